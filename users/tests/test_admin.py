"""Admin routes: lookups, listing, deletion, role changes, bootstrap."""

from __future__ import annotations

import pytest

from devtools.helpers import internal_headers
from users import create_app
from users.testing import ANON, PASSWORD, create_active_user, user_body, users_settings


@pytest.fixture
def admin(users_app, users_db):
    return create_active_user(
        users_app, username="root", email="root@example.com", password=PASSWORD, role="admin"
    )


@pytest.fixture
def admin_headers(admin):
    return internal_headers(admin["id"], "admin")


@pytest.fixture
def alice(users_app, users_db):
    return create_active_user(
        users_app, username="alice", email="alice@example.com", password=PASSWORD
    )


def test_get_by_id_and_identifier(users_client, admin_headers, alice):
    by_id = users_client.get(
        "/users/id", query_string={"user_id": alice["id"]}, headers=admin_headers
    )
    assert by_id.get_json() == alice
    for identifier in ("alice", "ALICE@example.com"):
        response = users_client.get(
            "/users/identifier", query_string={"identifier": identifier}, headers=admin_headers
        )
        assert response.get_json() == alice


@pytest.mark.parametrize("user_id", ["nonsense", "f" * 24, "", "z" * 24])
def test_unknown_or_malformed_ids_are_404_never_500(users_client, admin_headers, user_id):
    for method in (users_client.get, users_client.delete):
        response = method("/users/id", query_string={"user_id": user_id}, headers=admin_headers)
        assert response.status_code in (400, 404)


def test_admin_routes_need_the_admin_role(users_client, alice):
    user = internal_headers(alice["id"], "user")
    q = {"user_id": alice["id"]}
    assert users_client.get("/users/id", query_string=q, headers=user).status_code == 403
    assert users_client.delete("/users/id", query_string=q, headers=user).status_code == 403
    ident = {"identifier": "alice"}
    assert (
        users_client.get("/users/identifier", query_string=ident, headers=user).status_code == 403
    )
    assert (
        users_client.delete("/users/identifier", query_string=ident, headers=user).status_code
        == 403
    )
    assert users_client.get("/users", headers=user).status_code == 403
    role = users_client.patch(f"/users/{alice['id']}/role", json={"role": "admin"}, headers=user)
    assert role.status_code == 403
    assert users_client.get("/users", headers=ANON).status_code == 401


def test_delete_by_id_and_by_identifier(users_app, users_client, admin_headers, alice):
    response = users_client.delete(
        "/users/id", query_string={"user_id": alice["id"]}, headers=admin_headers
    )
    assert response.status_code == 204
    assert response.headers["X-Sessions-Invalidated"] == alice["id"]
    assert users_client.get(f"/internal/users/{alice['id']}", headers=ANON).status_code == 404
    assert (
        users_client.delete(
            "/users/id", query_string={"user_id": alice["id"]}, headers=admin_headers
        ).status_code
        == 404
    )
    bob = create_active_user(users_app, username="bob", email="bob@example.com", password=PASSWORD)
    response = users_client.delete(
        "/users/identifier", query_string={"identifier": "Bob@Example.com"}, headers=admin_headers
    )
    assert response.status_code == 204
    assert response.headers["X-Sessions-Invalidated"] == bob["id"]
    check = {"identifier": "bob", "password": PASSWORD}
    assert (
        users_client.post("/internal/credentials/verify", json=check, headers=ANON).status_code
        == 401
    )


def test_list_paginates_and_searches(users_app, users_client, admin_headers):
    for i in range(5):
        create_active_user(
            users_app, username=f"student{i}", email=f"s{i}@school.org", password=PASSWORD
        )
    page = users_client.get(
        "/users", query_string={"page": 2, "per_page": 2}, headers=admin_headers
    )
    body = page.get_json()
    assert (body["page"], body["per_page"], body["total"]) == (2, 2, 6)
    assert [u["username"] for u in body["users"]] == ["student1", "student2"]
    found = users_client.get("/users", query_string={"search": "STUDENT3"}, headers=admin_headers)
    assert [u["username"] for u in found.get_json()["users"]] == ["student3"]
    by_mail = users_client.get(
        "/users", query_string={"search": "school.org"}, headers=admin_headers
    )
    assert by_mail.get_json()["total"] == 5
    regex = users_client.get("/users", query_string={"search": ".*"}, headers=admin_headers)
    assert regex.get_json()["total"] == 0  # searched literally, not as a pattern
    for bad in ({"per_page": 1000}, {"page": 0}, {"page": "x"}, {"sort": "email"}):
        assert (
            users_client.get("/users", query_string=bad, headers=admin_headers).status_code == 400
        )


# Leading/trailing whitespace (\n, \x85) is trimmed like in every query, so those sit inside.
@pytest.mark.parametrize("search", ["a\x00b", "\x00", "ali\nce", "tab\there", "\x7f", "x\x85y"])
def test_a_search_with_control_characters_is_a_validation_error(
    users_client, admin_headers, search
):
    """Real MongoDB refuses a regex holding NUL; the service must answer 400, not 500."""
    response = users_client.get("/users", query_string={"search": search}, headers=admin_headers)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "validation_error"
    assert "search" in str(body)


def test_a_search_with_other_unicode_still_works(users_client, admin_headers, alice):
    response = users_client.get("/users", query_string={"search": "ALİCE"}, headers=admin_headers)
    assert response.status_code == 200


def test_role_change_bumps_tokens_and_protects_the_last_admin(
    users_client, admin, admin_headers, alice, users_clock
):
    response = users_client.patch(
        f"/users/{alice['id']}/role", json={"role": "admin"}, headers=admin_headers
    )
    assert response.status_code == 200
    assert response.get_json()["role"] == "admin"
    assert response.headers["X-Sessions-Invalidated"] == alice["id"]
    summary = users_client.get(f"/internal/users/{alice['id']}", headers=ANON).get_json()
    assert summary["tokens_valid_after"] == int(users_clock.now * 1000)
    assert (
        users_client.patch(
            f"/users/{alice['id']}/role", json={"role": "user"}, headers=admin_headers
        ).status_code
        == 200
    )
    last = users_client.patch(
        f"/users/{admin['id']}/role", json={"role": "user"}, headers=admin_headers
    )
    assert last.status_code == 409
    for bad in ({"role": "superuser"}, {"role": {"$ne": None}}, {}):
        assert (
            users_client.patch(
                f"/users/{alice['id']}/role", json=bad, headers=admin_headers
            ).status_code
            == 400
        )
    assert (
        users_client.patch(
            "/users/nonsense/role", json={"role": "user"}, headers=admin_headers
        ).status_code
        == 404
    )


def test_create_admin_cli(users_app, users_db):
    runner = users_app.test_cli_runner()
    result = runner.invoke(
        args=[
            "create-admin",
            "--email",
            "Boss@Example.com",
            "--username",
            "boss",
            "--password",
            PASSWORD,
        ]
    )
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    doc = (
        users_app.extensions["container"]
        .database()["users"]
        .find_one({"email": "boss@example.com"})
    )
    assert (doc["role"], doc["is_active"]) == ("admin", True)
    weak = runner.invoke(
        args=[
            "create-admin",
            "--email",
            "b2@example.com",
            "--username",
            "b2",
            "--password",
            "short",
        ]
    )
    assert weak.exit_code != 0


def test_admin_is_seeded_in_development_only():
    seed = {"admin_email": "seed@example.com", "admin_username": "seed", "admin_password": PASSWORD}
    dev = create_app(users_settings(environment="development", run_mail_relay=False, **seed))
    doc = dev.extensions["container"].database()["users"].find_one({"email": "seed@example.com"})
    assert doc is not None
    assert doc["role"] == "admin"
    assert doc["is_active"]
    test = create_app(users_settings(run_mail_relay=False, mongo_db="users_seed_check", **seed))
    assert (
        test.extensions["container"].database()["users"].find_one({"email": "seed@example.com"})
        is None
    )


def test_production_refuses_missing_secrets():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        users_settings(environment="production", totp_encryption_key="")


def test_the_last_admin_cannot_be_deleted_either(users_client, admin, admin_headers, alice):
    # Demoting the last admin is refused; deleting them must be too, or the platform is
    # left with nobody who can manage it (only the CLI bootstrap could repair it).
    for path, query in (
        ("/users/id", {"user_id": admin["id"]}),
        ("/users/identifier", {"identifier": "root"}),
    ):
        response = users_client.delete(path, query_string=query, headers=admin_headers)
        assert (response.status_code, response.get_json()["error"]) == (409, "last_admin")
    assert users_client.get("/users/me", headers=admin_headers).status_code == 200
    promoted = users_client.patch(
        f"/users/{alice['id']}/role", json={"role": "admin"}, headers=admin_headers
    )
    assert promoted.status_code == 200
    gone = users_client.delete(
        "/users/id", query_string={"user_id": admin["id"]}, headers=admin_headers
    )
    assert gone.status_code == 204


def test_an_admin_who_never_activated_does_not_count_as_the_other_admin(
    users_client, admin, admin_headers
):
    # An admin account created but never activated cannot log in to manage anything.
    pending = users_client.post("/users", json=user_body(role="admin"), headers=admin_headers)
    assert pending.status_code == 201, pending.get_json()
    assert (pending.get_json()["role"], pending.get_json()["is_active"]) == ("admin", False)
    demoted = users_client.patch(
        f"/users/{admin['id']}/role", json={"role": "user"}, headers=admin_headers
    )
    assert (demoted.status_code, demoted.get_json()["error"]) == (409, "last_admin")
    deleted = users_client.delete(
        "/users/id", query_string={"user_id": admin["id"]}, headers=admin_headers
    )
    assert (deleted.status_code, deleted.get_json()["error"]) == (409, "last_admin")
    # The pending admin itself may go: the active one remains.
    gone = users_client.delete(
        "/users/id", query_string={"user_id": pending.get_json()["id"]}, headers=admin_headers
    )
    assert gone.status_code == 204


def _two_admins(users_app, round_number):
    first = create_active_user(
        users_app,
        username=f"first{round_number}",
        email=f"first{round_number}@example.com",
        password=PASSWORD,
        role="admin",
    )
    second = create_active_user(
        users_app,
        username=f"second{round_number}",
        email=f"second{round_number}@example.com",
        password=PASSWORD,
        role="admin",
    )
    return first, second


def _removal(kind, actor, target):
    """One admin's request against the other: (method, path, kwargs)."""
    headers = internal_headers(actor["id"], "admin")
    if kind == "demote":
        return (
            "PATCH",
            f"/users/{target['id']}/role",
            {"json": {"role": "user"}, "headers": headers},
        )
    if kind == "delete_by_id":
        return (
            "DELETE",
            "/users/id",
            {"query_string": {"user_id": target["id"]}, "headers": headers},
        )
    return (
        "DELETE",
        "/users/identifier",
        {"query_string": {"identifier": target["username"]}, "headers": headers},
    )


def _at_once(users_app, requests):
    """The requests on their own threads, each released by one barrier."""
    import threading

    barrier = threading.Barrier(len(requests))
    answers: list[tuple[int, dict | None]] = [(0, None)] * len(requests)

    def send(index, method, path, kwargs):
        client = users_app.test_client()
        barrier.wait(timeout=10)
        response = client.open(path, method=method, **kwargs)
        answers[index] = (response.status_code, response.get_json(silent=True))

    threads = [
        threading.Thread(target=send, args=(index, *request))
        for index, request in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return answers


def _active_admins(users_app):
    users = users_app.extensions["container"].database()["users"]
    return users.count_documents({"role": "admin", "is_active": True})


@pytest.mark.parametrize(
    ("first_kind", "second_kind"),
    [
        ("demote", "demote"),
        ("delete_by_id", "delete_by_id"),
        ("demote", "delete_by_identifier"),
        ("delete_by_identifier", "demote"),
    ],
)
def test_two_admins_removing_each_other_at_once_leave_one_admin(
    users_app, users_db, monkeypatch, first_kind, second_kind
):
    """Two concurrent requests, repeated. Every users-collection command is slowed down
    (as on a loaded server), so each request's reads happen before the other's writes:
    a check-then-write rule lets both through and leaves no admin."""
    repository = users_app.extensions["container"].user_repository()
    users = repository.users
    for round_number in range(5):
        users.delete_many({})
        first, second = _two_admins(users_app, round_number)
        monkeypatch.setattr(repository, "users", SlowCollection(users))
        answers = _at_once(
            users_app,
            [_removal(first_kind, first, second), _removal(second_kind, second, first)],
        )
        monkeypatch.undo()
        statuses = sorted(status for status, _ in answers)
        assert statuses in ([200, 409], [204, 409]), answers
        [refused] = [body for status, body in answers if status == 409]
        assert refused["error"] == "last_admin"
        assert _active_admins(users_app) == 1, f"round {round_number}: {answers}"


class SlowCollection:
    """A collection whose every command waits 10 ms first."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        import time

        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def slowly(*args, **kwargs):
            time.sleep(0.01)
            return attribute(*args, **kwargs)

        return slowly


def test_a_promotion_racing_a_demotion_of_the_same_user_never_counts_a_non_admin(
    users_app, users_client, admin, admin_headers, alice
):
    """The guard may lag behind the documents (stricter), never run ahead of them."""
    users = users_app.extensions["container"].database()["users"]
    guards = users_app.extensions["container"].database()["guards"]
    for _ in range(10):
        _at_once(
            users_app,
            [
                (
                    "PATCH",
                    f"/users/{alice['id']}/role",
                    {"json": {"role": role}, "headers": admin_headers},
                )
                for role in ("admin", "user", "admin", "user")
            ],
        )
        counted = set(guards.find_one({"_id": "admins"})["admins"])
        admins = {doc["_id"] for doc in users.find({"role": "admin", "is_active": True})}
        assert counted <= admins
    # Whatever the races left, the root admin cannot be demoted while alone counted.
    if len(counted) == 1:
        last = users_client.patch(
            f"/users/{admin['id']}/role", json={"role": "user"}, headers=admin_headers
        )
        assert last.status_code == 409


def test_an_admin_activating_their_account_counts_as_the_other_admin(
    users_app, users_client, admin, admin_headers
):
    import re

    from users.testing import activation_code

    pending = users_client.post("/users", json=user_body(role="admin"), headers=admin_headers)
    assert pending.status_code == 201
    code = activation_code(users_app, "john@example.com")
    assert re.fullmatch(r"\d{6}", code)
    activated = users_client.patch("/users/activation", json={"code": code}, headers=ANON)
    assert activated.status_code == 200
    demoted = users_client.patch(
        f"/users/{admin['id']}/role", json={"role": "user"}, headers=admin_headers
    )
    assert demoted.status_code == 200
