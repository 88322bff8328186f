"""TOTP enrolment, the gateway's credential and MFA checks, internal user lookup."""

from __future__ import annotations

import base64
import logging
import threading

import pyotp
import pytest

from devtools.helpers import internal_headers
from users.security import totp_code
from users.testing import (
    ANON,
    PASSWORD,
    create_active_user,
    register,
    totp_secret,
    user_service,
    without_request_id,
)

SUMMARY = {"id", "role", "is_active", "mfa_enabled", "tokens_valid_after"}


@pytest.fixture
def user(users_app, users_db):
    return create_active_user(users_app, username="mfa", email="mfa@example.com", password=PASSWORD)


def enable(client, user_id, clock_now):
    headers = internal_headers(user_id)
    response = client.patch("/users/mfa/enable", json={"password": PASSWORD}, headers=headers)
    assert response.status_code == 200, response.get_json()
    secret = totp_secret(response.get_json()["provisioning_uri"])
    confirm = client.post(
        "/users/mfa/confirm", json={"code": totp_code(secret, clock_now)}, headers=headers
    )
    assert confirm.status_code == 200, confirm.get_json()
    return secret, confirm.get_json()["recovery_codes"]


def verify(client, user_id, code):
    return client.post(
        "/internal/mfa/verify", json={"user_id": user_id, "code": code}, headers=ANON
    )


def test_enable_returns_a_provisioning_uri_and_a_png_qr(users_app, users_client, user):
    headers = internal_headers(user["id"])
    wrong = users_client.patch("/users/mfa/enable", json={"password": "wrong!"}, headers=headers)
    assert wrong.status_code == 400
    response = users_client.patch("/users/mfa/enable", json={"password": PASSWORD}, headers=headers)
    body = response.get_json()
    totp = pyotp.parse_uri(body["provisioning_uri"])
    assert totp.issuer == "Course Platform"
    assert totp.name == "mfa@example.com"
    assert len(base64.b32decode(totp.secret)) == 20  # 160 bits
    assert base64.b64decode(body["qr_code_base64"]).startswith(b"\x89PNG")
    stored = (
        users_app.extensions["container"].database()["users"].find_one({"email": "mfa@example.com"})
    )
    assert totp.secret not in str(stored)  # encrypted at rest
    # Not active until confirmed; the pending QR can be fetched again.
    assert users_client.get("/users/me", headers=headers).get_json()["mfa_enabled"] is False
    qr = users_client.get("/users/mfa/qr", headers=headers).get_json()
    assert totp_secret(qr["provisioning_uri"]) == totp.secret


def test_enable_ignores_any_user_id_in_the_body(users_client, user):
    body = {"password": PASSWORD, "user_id": "a" * 24}
    response = users_client.patch(
        "/users/mfa/enable", json=body, headers=internal_headers(user["id"])
    )
    assert response.status_code == 400


def test_confirm_activates_returns_recovery_codes_once_and_hides_the_qr(
    users_client, user, users_clock
):
    headers = internal_headers(user["id"])
    users_client.patch("/users/mfa/enable", json={"password": PASSWORD}, headers=headers)
    bad = users_client.post("/users/mfa/confirm", json={"code": "000000"}, headers=headers)
    assert bad.status_code == 400
    qr = users_client.get("/users/mfa/qr", headers=headers).get_json()
    secret = totp_secret(qr["provisioning_uri"])
    response = users_client.post(
        "/users/mfa/confirm", json={"code": totp_code(secret, users_clock.now)}, headers=headers
    )
    assert response.status_code == 200
    assert response.headers["X-Sessions-Invalidated"] == user["id"]
    codes = response.get_json()["recovery_codes"]
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert users_client.get("/users/mfa/qr", headers=headers).status_code == 404
    again = users_client.patch("/users/mfa/enable", json={"password": PASSWORD}, headers=headers)
    assert again.status_code == 409
    internal = users_client.get(f"/internal/users/{user['id']}", headers=ANON).get_json()
    assert internal["mfa_enabled"] is True
    assert internal["tokens_valid_after"] == int(users_clock.now * 1000)


def test_qr_without_pending_enrolment_is_404(users_client, user):
    assert (
        users_client.get("/users/mfa/qr", headers=internal_headers(user["id"])).status_code == 404
    )


def test_totp_verifies_once_and_replay_is_refused(users_client, user, users_clock, caplog):
    secret, _ = enable(users_client, user["id"], users_clock.now)
    users_clock.advance(30)
    code = totp_code(secret, users_clock.now)
    ok = verify(users_client, user["id"], code)
    assert ok.status_code == 200
    assert set(ok.get_json()) == SUMMARY
    assert ok.get_json()["mfa_enabled"] is True
    with caplog.at_level(logging.WARNING):
        replay = verify(users_client, user["id"], code)
    assert replay.status_code == 401
    assert replay.get_json()["error"] == "invalid_code"
    assert any(record.getMessage() == "totp_replay" for record in caplog.records)
    # An older (previous-step) code after a newer one was accepted: also refused.
    users_clock.advance(30)
    newer = totp_code(secret, users_clock.now)
    assert verify(users_client, user["id"], newer).status_code == 200
    older = totp_code(secret, users_clock.now - 30)
    assert verify(users_client, user["id"], older).status_code == 401


def test_the_code_used_to_confirm_cannot_log_in(users_client, user, users_clock):
    secret, _ = enable(users_client, user["id"], users_clock.now)
    assert verify(users_client, user["id"], totp_code(secret, users_clock.now)).status_code == 401


def test_window_is_previous_current_next_step(users_client, user, users_clock):
    secret, _ = enable(users_client, user["id"], users_clock.now)
    users_clock.advance(300)
    assert (
        verify(users_client, user["id"], totp_code(secret, users_clock.now - 90)).status_code == 401
    )
    assert (
        verify(users_client, user["id"], totp_code(secret, users_clock.now - 30)).status_code == 200
    )
    assert (
        verify(users_client, user["id"], totp_code(secret, users_clock.now + 30)).status_code == 200
    )
    users_clock.advance(300)
    assert (
        verify(users_client, user["id"], totp_code(secret, users_clock.now + 90)).status_code == 401
    )


def test_concurrent_use_of_one_code_succeeds_once(users_app, users_client, user, users_clock):
    secret, _ = enable(users_client, user["id"], users_clock.now)
    users_clock.advance(30)
    code = totp_code(secret, users_clock.now)
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def attempt() -> None:
        client = users_app.test_client()
        barrier.wait()
        statuses.append(verify(client, user["id"], code).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [401] * 5


@pytest.mark.parametrize(
    "code",
    ["１２３４５６", "٠١٢٣٤٥", "12345", "1234567", "12 3456", "abc", "", 123456, None, ["123456"]],
)
def test_malformed_codes_are_400(users_client, user, code):
    response = verify(users_client, user["id"], code)
    assert response.status_code == 400
    assert response.get_json()["error"] == "validation_error"


def test_recovery_codes_work_once(users_client, user, users_clock):
    _, codes = enable(users_client, user["id"], users_clock.now)
    assert verify(users_client, user["id"], codes[0]).status_code == 200
    assert verify(users_client, user["id"], codes[0]).status_code == 401
    assert verify(users_client, user["id"], codes[1].upper().replace("-", "")).status_code == 200


def test_verify_for_unknown_or_non_mfa_users_is_a_neutral_401(users_client, user):
    for user_id in (user["id"], "f" * 24, "not-an-id"):
        response = verify(users_client, user_id, "123456")
        assert response.status_code == 401
        assert response.get_json()["error"] == "invalid_code"


def test_disable_needs_password_and_a_current_code(users_client, user, users_clock):
    secret, codes = enable(users_client, user["id"], users_clock.now)
    headers = internal_headers(user["id"])
    users_clock.advance(30)
    code = totp_code(secret, users_clock.now)
    bad_password = users_client.patch(
        "/users/mfa/disable", json={"password": "not my password", "code": code}, headers=headers
    )
    assert bad_password.status_code == 400
    bad_code = users_client.patch(
        "/users/mfa/disable", json={"password": PASSWORD, "code": "000000"}, headers=headers
    )
    assert bad_code.status_code == 400
    users_clock.advance(1)
    response = users_client.patch(
        "/users/mfa/disable", json={"password": PASSWORD, "code": code}, headers=headers
    )
    assert response.status_code == 200
    assert response.get_json()["mfa_enabled"] is False
    assert response.headers["X-Sessions-Invalidated"] == user["id"]
    internal = users_client.get(f"/internal/users/{user['id']}", headers=ANON).get_json()
    assert internal["tokens_valid_after"] == int(users_clock.now * 1000)
    assert verify(users_client, user["id"], codes[0]).status_code == 401


def test_disable_with_a_recovery_code(users_client, user, users_clock):
    _, codes = enable(users_client, user["id"], users_clock.now)
    response = users_client.patch(
        "/users/mfa/disable",
        json={"password": PASSWORD, "code": codes[3]},
        headers=internal_headers(user["id"]),
    )
    assert response.status_code == 200


# -- credential check ---------------------------------------------------------------------------


def check(client, identifier, password):
    body = {"identifier": identifier, "password": password}
    return client.post("/internal/credentials/verify", json=body, headers=ANON)


def test_credentials_by_email_or_username_return_the_summary(users_client, user):
    for identifier in ("mfa@example.com", "MFA@Example.COM", "mfa", "MFA"):
        response = check(users_client, identifier, PASSWORD)
        assert response.status_code == 200
        assert response.get_json() == {
            "id": user["id"],
            "role": "user",
            "is_active": True,
            "mfa_enabled": False,
            "tokens_valid_after": 0,
        }


def test_wrong_unknown_and_inactive_get_one_neutral_401(users_app, users_client, user, monkeypatch):
    register(users_client, username="inactive", email="inactive@example.com")
    dummy_calls: list[str] = []
    passwords = user_service(users_app).passwords
    real_dummy = passwords.dummy_verify
    monkeypatch.setattr(
        passwords, "dummy_verify", lambda pw: (dummy_calls.append(pw), real_dummy(pw))[1]
    )
    answers = [
        check(users_client, "mfa@example.com", "wrong password!"),
        check(users_client, "nobody@example.com", PASSWORD),
        check(users_client, "inactive@example.com", PASSWORD),
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    bodies = [without_request_id(a.get_json()) for a in answers]
    assert (
        bodies[0]
        == bodies[1]
        == bodies[2]
        == {
            "message": "The credentials are invalid.",
            "error": "invalid_credentials",
        }
    )
    assert dummy_calls == [PASSWORD]  # the unknown identifier still ran argon2


def test_login_rehashes_when_parameters_change(users_app, users_client, user, monkeypatch):
    from argon2 import PasswordHasher, Type

    database = users_app.extensions["container"].database()
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID)
    database["users"].update_one(
        {"email": "mfa@example.com"}, {"$set": {"password_hash": weak.hash(PASSWORD)}}
    )
    assert check(users_client, "mfa", PASSWORD).status_code == 200
    stored = database["users"].find_one({"email": "mfa@example.com"})["password_hash"]
    assert "m=8," not in stored
    assert user_service(users_app).passwords.verify(stored, PASSWORD)


def test_internal_user_lookup(users_client, user):
    response = users_client.get(f"/internal/users/{user['id']}", headers=ANON)
    assert response.status_code == 200
    assert set(response.get_json()) == {
        "id", "username", "email", "first_name", "last_name", "gender",
        "role", "is_active", "mfa_enabled", "tokens_valid_after",
    }  # fmt: skip
    for bad in ("nonsense", "f" * 24, '{"$ne":null}', "a" * 25):
        assert users_client.get(f"/internal/users/{bad}", headers=ANON).status_code == 404
