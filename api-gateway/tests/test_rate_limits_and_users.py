"""Per-IP limits (nginx in front, and across gunicorn workers) and the users routes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from flask import Flask

from devtools.devservers import Redis, free_port, port_open, wait_until
from devtools.helpers import TEST_INTERNAL_KEY, TEST_JWT_SECRET
from devtools.live import LiveServer
from gateway.testing import Platform, bearer, gateway_settings, start_platform
from users.testing import PASSWORD, create_active_user, user_body

LIMIT_DB = 8


def limit_redis(server: Redis) -> str:
    url = server.url.rsplit("/", 1)[0] + f"/{LIMIT_DB}"
    redis.Redis.from_url(url).flushdb()
    return url


def platform_with_limit(
    redis_server: Redis, users_server: LiveServer, limit: str, **settings: Any
) -> Platform:
    return start_platform(
        gateway_settings(
            users_url=users_server.url,
            redis_url=limit_redis(redis_server),
            auth_rate_limit=limit,
            **settings,
        )
    )


@pytest.fixture
def limited_platform(redis_server: Redis, users_server: LiveServer) -> Iterator[Platform]:
    platform = platform_with_limit(redis_server, users_server, "5/minute;30/hour")
    yield platform
    platform.close()


def test_spoofed_forwarded_for_does_not_escape_the_ip_limit(
    limited_platform: Platform, users_db: None
):
    statuses = []
    for index in range(8):
        response = limited_platform.http.post(
            "/api/users/password/forgot",
            json={"identifier": "nobody@example.com"},
            headers={"X-Forwarded-For": f"10.0.0.{index}", "X-Real-IP": f"10.0.1.{index}"},
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["error"] == "rate_limited"
            assert response.json()["request_id"]
            assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert statuses == [202] * 5 + [429] * 3
    # Another rate-limited route has its own bucket.
    login = limited_platform.http.post(
        "/api/auth/login", json={"identifier": "nobody", "password": "x"}
    )
    assert login.status_code == 401


def test_each_client_address_has_its_own_bucket(limited_platform: Platform, users_db: None):
    # 127.0.0.2 is loopback too: nginx sees a second client. The first one claims to be
    # the second in X-Forwarded-For; nginx overwrites that, so it only spends its own bucket.
    body = {"identifier": "nobody@example.com"}
    spoofing = [
        limited_platform.http.post(
            "/api/users/password/forgot", json=body, headers={"X-Forwarded-For": "127.0.0.2"}
        ).status_code
        for _ in range(6)
    ]
    assert spoofing == [202] * 5 + [429]
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=limited_platform.nginx.url, transport=transport) as other:
        statuses = [
            other.post("/api/users/password/forgot", json=body).status_code for _ in range(6)
        ]
    assert statuses == [202] * 5 + [429]


@pytest.fixture(scope="module")
def tight_platform(redis_server: Redis, users_server: LiveServer) -> Iterator[Platform]:
    platform = platform_with_limit(redis_server, users_server, "2/minute")
    yield platform
    platform.close()


@pytest.mark.parametrize(
    ("method", "path", "request_kwargs"),
    [
        pytest.param(
            "POST",
            "/api/auth/login",
            {"json": {"identifier": "nobody", "password": "not the password"}},
            id="login",
        ),
        pytest.param(
            "POST",
            "/api/auth/mfa/verify",
            {"json": {"mfa_token": "x" * 43, "code": "123456"}},
            id="mfa-verify",
        ),
        pytest.param("POST", "/api/users", {"json": user_body()}, id="register"),
        pytest.param(
            "PATCH",
            "/api/users/activation",
            {"json": {"code": "123456", "identifier": "nobody@example.com"}},
            id="activation",
        ),
        pytest.param(
            "GET",
            "/api/users/activation/resend",
            {"params": {"identifier": "nobody@example.com"}},
            id="resend",
        ),
        pytest.param(
            "POST",
            "/api/users/password/forgot",
            {"json": {"identifier": "nobody@example.com"}},
            id="forgot",
        ),
        pytest.param(
            "POST",
            "/api/users/password/reset",
            {"json": {"token": "x" * 43, "new_password": "a brand new passphrase 42"}},
            id="reset",
        ),
    ],
)
def test_every_public_auth_route_is_limited_per_ip(
    tight_platform: Platform,
    redis_server: Redis,
    users_db: None,
    method: str,
    path: str,
    request_kwargs: dict[str, Any],
):
    limit_redis(redis_server)
    first, second, third = (
        tight_platform.http.request(method, path, **request_kwargs) for _ in range(3)
    )
    assert first.status_code != 429, first.text
    assert second.status_code != 429, second.text
    assert third.status_code == 429
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    body = third.json()
    assert (body["error"], body["request_id"]) == ("rate_limited", third.headers["X-Request-ID"])
    assert body["message"]


def test_limit_holds_exactly_across_four_gunicorn_workers(
    redis_server: Redis, users_server: LiveServer, users_db: None, tmp_path: Path
):
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
        "INTERNAL_API_KEY": TEST_INTERNAL_KEY,
        "REDIS_URL": limit_redis(redis_server),
        "USERS_URL": users_server.url,
        "AUTH_RATE_LIMIT": "5/minute;30/hour",
        "LOG_LEVEL": "WARNING",
    }
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    argv = [
        gunicorn,
        "-w",
        "4",
        "-k",
        "gthread",
        "--threads",
        "4",
        "--graceful-timeout",
        "2",
        "-b",
        f"127.0.0.1:{port}",
    ]
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115
    process = subprocess.Popen([*argv, "gateway:create_app()"], env=env, stdout=log, stderr=log)
    try:
        wait_until(lambda: port_open(port), timeout=20, what="gunicorn")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            # Warm every worker up on an unlimited route so all four take part.
            for _ in range(16):
                http.get("/health")
            statuses = [
                http.post(
                    "/api/users/password/forgot", json={"identifier": "nobody@example.com"}
                ).status_code
                for _ in range(15)
            ]
        assert sum(status != 429 for status in statuses) == 5, statuses
    finally:
        process.terminate()
        process.wait(10)
        log.close()


# -- users routes ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def users_platform(redis_server: Redis, users_server: LiveServer) -> Iterator[Platform]:
    url = redis_server.url.rsplit("/", 1)[0] + "/9"
    platform = start_platform(
        gateway_settings(
            users_url=users_server.url,
            redis_url=url,
            cookie_secure=False,
            auth_rate_limit="1000/minute",
        )
    )
    yield platform
    platform.close()


@pytest.fixture
def gw(users_platform: Platform, users_db: None) -> Platform:
    users_platform.http.cookies.clear()
    return users_platform


def login(gw: Platform, users_app: Flask, name: str, role: str = "user") -> dict[str, Any]:
    account = create_active_user(
        users_app, username=name, email=f"{name}@example.com", password=PASSWORD, role=role
    )
    response = gw.http.post("/api/auth/login", json={"identifier": name, "password": PASSWORD})
    assert response.status_code == 200
    gw.http.cookies.clear()
    return {"id": account["id"], "auth": bearer(response.json()["access_token"])}


def test_access_rules(gw: Platform, users_app: Flask):
    alice = login(gw, users_app, "alice")
    admin = login(gw, users_app, "root", "admin")
    http = gw.http
    assert http.get("/api/users/me").status_code == 401
    assert http.get("/api/users/me", headers=alice["auth"]).json()["username"] == "alice"
    patched = http.patch("/api/users/me", json={"first_name": "Al"}, headers=alice["auth"])
    assert (patched.status_code, patched.json()["first_name"]) == (200, "Al")
    for method, path in [
        ("GET", "/api/users"),
        ("GET", f"/api/users/id?user_id={admin['id']}"),
        ("GET", "/api/users/identifier?identifier=root"),
        ("DELETE", "/api/users/identifier?identifier=root"),
        ("PATCH", f"/api/users/{admin['id']}/role"),
    ]:
        response = http.request(method, path, headers=alice["auth"], json={"role": "user"})
        assert (response.status_code, response.json()["error"]) == (403, "forbidden"), path
    # Admins may use every route, the caller's own ones included.
    assert http.get("/api/users/me", headers=admin["auth"]).json()["role"] == "admin"
    listing = http.get("/api/users", params={"per_page": 10}, headers=admin["auth"]).json()
    assert listing["total"] == 2
    found = http.get("/api/users/id", params={"user_id": alice["id"]}, headers=admin["auth"])
    assert found.json()["username"] == "alice"
    bad_query = http.get("/api/users/id", params={"nope": "1"}, headers=admin["auth"])
    assert (bad_query.status_code, bad_query.json()["error"]) == (400, "validation_error")


def test_role_change_and_deletion_end_the_target_sessions(gw: Platform, users_app: Flask):
    alice = login(gw, users_app, "alice")
    admin = login(gw, users_app, "root", "admin")
    http = gw.http
    promoted = http.patch(
        f"/api/users/{alice['id']}/role", json={"role": "admin"}, headers=admin["auth"]
    )
    assert (promoted.status_code, promoted.json()["role"]) == (200, "admin")
    assert "X-Sessions-Invalidated" not in promoted.headers
    assert http.get("/api/users/me", headers=alice["auth"]).status_code == 401
    again = http.post("/api/auth/login", json={"identifier": "alice", "password": PASSWORD})
    fresh = bearer(again.json()["access_token"])
    assert http.get("/api/users", headers=fresh).status_code == 200
    gone = http.delete("/api/users/id", params={"user_id": alice["id"]}, headers=admin["auth"])
    assert gone.status_code == 204
    assert http.get("/api/users/me", headers=fresh).status_code == 401
    assert http.get("/api/users/me", headers=admin["auth"]).status_code == 200


def test_bodies_are_validated_and_downstream_errors_pass_through(gw: Platform, users_app: Flask):
    alice = login(gw, users_app, "alice")
    http = gw.http
    operator = http.post("/api/users/password/forgot", json={"identifier": {"$ne": None}})
    assert (operator.status_code, operator.json()["error"]) == (400, "validation_error")
    extra = http.patch("/api/users/me", json={"role": "admin"}, headers=alice["auth"])
    assert (extra.status_code, extra.json()["error"]) == (400, "validation_error")
    wrong = http.post(
        "/api/users/me/password",
        json={"current_password": "not it at all", "new_password": "whatever else 123"},
        headers=alice["auth"],
    )
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_password")
    taken = http.post(
        "/api/users",
        json={
            "username": "alice",
            "first_name": "A",
            "last_name": "B",
            "email": "other@example.com",
            "password": PASSWORD,
            "password_confirmation": PASSWORD,
            "gender": "Other",
        },
    )
    assert (taken.status_code, taken.json()["error"]) == (409, "username_taken")
    resend = http.get("/api/users/activation/resend", params={"identifier": "nobody"})
    assert resend.status_code == 202


def test_internal_paths_and_identity_headers_are_not_routed(gw: Platform, users_app: Flask):
    alice = login(gw, users_app, "alice")
    http = gw.http
    for path in ["/internal/credentials/verify", "/api/internal/credentials/verify"]:
        response = http.post(path, json={"identifier": "alice", "password": PASSWORD})
        assert response.status_code in (404, 405), path
    assert http.get(f"/internal/users/{alice['id']}").status_code == 404
    spoofed = {**alice["auth"], "X-User-Role": "admin", "X-User-Id": "someone"}
    assert http.get("/api/users", headers=spoofed).status_code == 403
    assert http.get("/api/users/me", headers=spoofed).json()["username"] == "alice"


# -- per-account limits on the password-checking routes of a logged-in user ------------------


@pytest.fixture
def account_limited(redis_server: Redis, users_server: LiveServer) -> Iterator[Platform]:
    platform = platform_with_limit(
        redis_server,
        users_server,
        "1000/minute",
        cookie_secure=False,
        account_rate_limit="3/minute",
    )
    yield platform
    platform.close()


def change_password(gw: Platform, caller: dict[str, Any], current: str) -> httpx.Response:
    body = {"current_password": current, "new_password": "a brand new passphrase 42"}
    return gw.http.post("/api/users/me/password", json=body, headers=caller["auth"])


def test_a_stolen_token_gets_few_password_guesses_and_other_users_keep_theirs(
    account_limited: Platform, users_app: Flask, users_db: None
):
    alice = login(account_limited, users_app, "alice")
    bob = login(account_limited, users_app, "bob")  # same client address as alice
    guesses = [change_password(account_limited, alice, f"guess number {n}") for n in range(3)]
    assert [g.status_code for g in guesses] == [400] * 3
    # The limit is the account's, whatever the route that checks its password.
    for attempt in (
        change_password(account_limited, alice, PASSWORD),
        account_limited.http.patch(
            "/api/users/mfa/enable", json={"password": PASSWORD}, headers=alice["auth"]
        ),
        account_limited.http.patch(
            "/api/users/mfa/disable",
            json={"password": PASSWORD, "code": "123456"},
            headers=alice["auth"],
        ),
    ):
        assert attempt.status_code == 429, attempt.text
        assert 1 <= int(attempt.headers["Retry-After"]) <= 60
        envelope = attempt.json()
        assert envelope["error"] == "rate_limited"
        assert envelope["request_id"] == attempt.headers["X-Request-ID"]
    # Without a valid token there is no account to charge: 401, and bob's bucket is untouched.
    forged = {"Authorization": "Bearer " + alice["auth"]["Authorization"][7:-2] + "xx"}
    assert account_limited.http.post("/api/users/me/password", headers=forged).status_code == 401
    assert change_password(account_limited, bob, "not bob's password").status_code == 400
    assert change_password(account_limited, bob, PASSWORD).status_code == 200
