"""Registration, canonical forms, password policy, the caller's own account."""

from __future__ import annotations

import threading

import pytest

from devtools.helpers import internal_headers
from users.testing import ANON, PASSWORD, create_active_user, register, user_body

SEED_FIELDS = {"id", "username", "first_name", "last_name", "email", "gender", "role", "is_active"}


def test_register_returns_the_seed_shape_inactive(users_client):
    created = register(users_client, email="John@Example.com")
    assert set(created) == SEED_FIELDS | {"mfa_enabled"}
    assert created["email"] == "john@example.com"
    assert (created["role"], created["is_active"], created["mfa_enabled"]) == ("user", False, False)
    assert len(created["id"]) == 24
    assert "password" not in str(created)


@pytest.mark.parametrize("headers", [ANON, internal_headers("a" * 24, "user")])
def test_registering_with_a_role_is_refused_unless_admin(users_client, headers):
    for role in ("admin", "user"):
        response = users_client.post("/users", json=user_body(role=role), headers=headers)
        assert response.status_code == 403
    assert (
        users_client.get("/users", headers=internal_headers("b" * 24, "admin")).get_json()["total"]
        == 0
    )


def test_an_admin_may_choose_the_role(users_client):
    response = users_client.post(
        "/users", json=user_body(role="admin"), headers=internal_headers("c" * 24, "admin")
    )
    assert response.status_code == 201
    assert response.get_json()["role"] == "admin"


def test_email_case_and_width_variants_are_one_account(users_client):
    register(users_client, email="alice@example.com", username="alice")
    for variant in ("Alice@Example.com", "ALICE@EXAMPLE.COM", "ａlice@example.com"):
        response = users_client.post(
            "/users", json=user_body(email=variant, username="other"), headers=ANON
        )
        assert response.status_code == 409, variant
        assert response.get_json()["error"] == "email_taken"


def test_username_variants_collide_and_display_form_is_kept(users_client):
    created = register(users_client, username="Alice.W", email="a@example.com")
    assert created["username"] == "Alice.W"
    for variant in ("alice.w", "ALICE.W", "Ａlice.W"):
        response = users_client.post(
            "/users", json=user_body(username=variant, email="b@example.com"), headers=ANON
        )
        assert response.status_code == 409, variant
        assert response.get_json()["error"] == "username_taken"


def test_concurrent_registrations_of_one_email_give_one_201_and_one_409(users_app, users_db):
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def attempt(index: int) -> None:
        client = users_app.test_client()
        barrier.wait()
        body = user_body(username=f"racer{index}", email="race@example.com")
        statuses.append(client.post("/users", json=body, headers=ANON).status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409, 409, 409]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"password": "short pass", "password_confirmation": "short pass"}, "weak_password"),
        ({"password": "x" * 129, "password_confirmation": "x" * 129}, "weak_password"),
        ({"password": "johndoe12345", "username": "johndoe12345"}, "weak_password"),
        ({"password": "John@Example.com", "password_confirmation": "John@Example.com"}, None),
        ({"password": "password1234", "password_confirmation": "password1234"}, "weak_password"),
        ({"password": "Qwertyuiop123", "password_confirmation": "Qwertyuiop123"}, "weak_password"),
        ({"password_confirmation": "something else entirely"}, "validation_error"),
        ({"username": "a b"}, "validation_error"),
        ({"username": "has@sign"}, "validation_error"),
        ({"email": "not-an-email"}, "validation_error"),
        ({"is_active": True}, "validation_error"),
        ({"first_name": 5}, "validation_error"),
    ],
)
def test_invalid_registrations_are_400(users_client, overrides, error):
    body = user_body(**overrides)
    if "password_confirmation" not in overrides and "password" in overrides:
        body["password_confirmation"] = overrides["password"]
    response = users_client.post("/users", json=body, headers=ANON)
    assert response.status_code == 400, response.get_json()
    if error:
        assert response.get_json()["error"] == error


def test_long_passphrases_with_no_composition_rules_are_fine(users_client):
    phrase = "zielony słoń tańczy w deszczu"
    register(users_client, password=phrase, password_confirmation=phrase)


def test_unknown_fields_are_refused(users_client):
    response = users_client.post("/users", json=user_body(admin=True), headers=ANON)
    assert response.status_code == 400
    assert response.get_json()["error"] == "validation_error"


def test_calls_without_the_internal_key_are_refused(users_client):
    assert users_client.post("/users", json=user_body()).status_code == 401
    assert users_client.post("/internal/credentials/verify", json={}).status_code == 401
    assert users_client.get("/health/live").status_code == 200
    assert users_client.get("/health/ready").status_code == 200


def test_me_reads_and_updates_only_the_caller(users_app, users_client):
    user = create_active_user(users_app, username="me", email="me@example.com", password=PASSWORD)
    headers = internal_headers(user["id"])
    assert users_client.get("/users/me", headers=headers).get_json() == user
    response = users_client.patch(
        "/users/me", json={"first_name": "Maria", "gender": "Female"}, headers=headers
    )
    assert response.status_code == 200
    assert (response.get_json()["first_name"], response.get_json()["gender"]) == ("Maria", "Female")
    assert response.get_json()["last_name"] == user["last_name"]
    for forbidden in ({"role": "admin"}, {"email": "x@example.com"}, {"is_active": True}):
        assert users_client.patch("/users/me", json=forbidden, headers=headers).status_code == 400
    assert users_client.get("/users/me", headers=ANON).status_code == 401
    assert users_client.get("/users/me", headers=internal_headers("nonsense")).status_code == 404


def test_change_password_needs_the_current_one_and_bumps_tokens_valid_after(
    users_app, users_client, users_clock
):
    user = create_active_user(users_app, username="pw", email="pw@example.com", password=PASSWORD)
    headers = internal_headers(user["id"])
    new = "a brand new passphrase"
    wrong = users_client.post(
        "/users/me/password",
        json={"current_password": "not my password!", "new_password": new},
        headers=headers,
    )
    assert wrong.status_code == 400
    assert "X-Sessions-Invalidated" not in wrong.headers
    weak = users_client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "password1234"},
        headers=headers,
    )
    assert weak.status_code == 400
    assert weak.get_json()["error"] == "weak_password"
    ok = users_client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": new},
        headers=headers,
    )
    assert ok.status_code == 200
    assert ok.headers["X-Sessions-Invalidated"] == user["id"]
    summary = users_client.get(f"/internal/users/{user['id']}", headers=ANON).get_json()
    assert summary["tokens_valid_after"] == int(users_clock.now * 1000)
    check = {"identifier": "pw@example.com", "password": new}
    assert (
        users_client.post("/internal/credentials/verify", json=check, headers=ANON).status_code
        == 200
    )


def test_the_live_server_serves_the_api_over_a_real_socket(users_server, users_db):
    import httpx

    with httpx.Client(base_url=users_server.url, headers=ANON, timeout=10) as http:
        created = http.post("/users", json=user_body(email="live@example.com", username="live"))
        assert created.status_code == 201
        user_id = created.json()["id"]
        assert http.get(f"/internal/users/{user_id}").json()["email"] == "live@example.com"
        assert httpx.get(f"{users_server.url}/users/me", timeout=10).status_code == 401
