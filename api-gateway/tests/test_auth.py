"""Login, MFA, refresh sessions, logout and back-off: nginx → gateway → users, real Redis."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pyotp
import pytest
import redis
from flask import Flask
from flask_jwt_extended import create_access_token, create_refresh_token

from common.logging import JsonFormatter
from devtools.devservers import Redis, free_port
from devtools.live import LiveServer
from gateway import create_app
from gateway.adapters.state import digest, now_ms
from gateway.settings import GatewaySettings
from gateway.testing import Platform, bearer, gateway_settings, mint_access_token, start_platform
from users.testing import PASSWORD, create_active_user, reset_token, totp_secret, user_service

GATEWAY_DB = 7


def gateway_redis_url(server: Redis) -> str:
    return server.url.rsplit("/", 1)[0] + f"/{GATEWAY_DB}"


def gateway_store(server: Redis) -> redis.Redis:
    return redis.Redis.from_url(gateway_redis_url(server), decode_responses=True)


@pytest.fixture(scope="module")
def auth_platform(redis_server: Redis, users_server: LiveServer) -> Iterator[Platform]:
    settings = gateway_settings(
        users_url=users_server.url,
        redis_url=gateway_redis_url(redis_server),
        cookie_secure=False,
        auth_rate_limit="1000/minute",
    )
    platform = start_platform(settings)
    yield platform
    platform.close()


@pytest.fixture
def gw(auth_platform: Platform, redis_server: Redis, users_db: None) -> Platform:
    redis.Redis.from_url(gateway_redis_url(redis_server)).flushdb()
    return auth_platform


def user(users_app: Flask, name: str = "alice", role: str = "user") -> dict[str, Any]:
    return create_active_user(
        users_app, username=name, email=f"{name}@example.com", password=PASSWORD, role=role
    )


def call(gw: Platform, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request without a cookie jar: each test says exactly which cookies it sends."""
    return httpx.request(method, gw.nginx.url + path, timeout=10, **kwargs)


def login(gw: Platform, identifier: str, password: str = PASSWORD) -> httpx.Response:
    return call(
        gw, "POST", "/api/auth/login", json={"identifier": identifier, "password": password}
    )


def set_cookies(response: httpx.Response) -> dict[str, Any]:
    jar: dict[str, Any] = {}
    for header in response.headers.get_list("set-cookie"):
        parsed = SimpleCookie()
        parsed.load(header)
        for name, morsel in parsed.items():
            jar[name] = morsel
    return jar


class Session:
    """What a browser would hold after login: the access token and both cookies."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.text
        self.access = response.json()["access_token"]
        cookies = set_cookies(response)
        self.refresh_cookie = cookies["refresh_token"].value
        self.csrf = cookies["csrf_refresh_token"].value

    def refresh(self, gw: Platform, *, csrf: bool = True) -> httpx.Response:
        headers = {"Cookie": f"refresh_token={self.refresh_cookie}"}
        if csrf:
            headers["X-CSRF-TOKEN"] = self.csrf
        return call(gw, "POST", "/api/auth/refresh", headers=headers)

    def auth(self) -> dict[str, str]:
        return bearer(self.access)


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def without_request_id(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    body = response.json()
    body.pop("request_id")
    return response.status_code, body


# -- login ---------------------------------------------------------------------------------


@pytest.mark.parametrize("identifier", ["alice", "alice@example.com", "ALICE@example.com"])
def test_login_with_username_or_email(gw: Platform, users_app: Flask, identifier: str):
    account = user(users_app)
    session = Session(login(gw, identifier))
    token = claims(session.access)
    assert token["sub"] == account["id"]
    assert (token["role"], token["amr"], token["type"]) == ("user", ["pwd"], "access")
    assert {"jti", "iat", "exp", "iat_ms", "sid"} <= set(token)
    assert token["exp"] - token["iat"] == 15 * 60
    assert abs(token["iat_ms"] - time.time() * 1000) < 5000
    me = call(gw, "GET", "/api/users/me", headers=session.auth())
    assert (me.status_code, me.json()["username"]) == (200, "alice")


def test_identical_answers_for_unknown_wrong_inactive_and_backed_off(
    gw: Platform, users_app: Flask
):
    user(users_app)
    registered = call(
        gw,
        "POST",
        "/api/users",
        json={
            "username": "sleepy",
            "first_name": "S",
            "last_name": "L",
            "email": "sleepy@example.com",
            "password": PASSWORD,
            "password_confirmation": PASSWORD,
            "gender": "Other",
        },
    )
    assert registered.status_code == 201, registered.text
    unknown = without_request_id(login(gw, "nobody@example.com"))
    wrong = without_request_id(login(gw, "alice", "wrong password!"))
    inactive = without_request_id(login(gw, "sleepy"))
    assert unknown == wrong == inactive
    assert unknown[0] == 401
    for _ in range(4):
        login(gw, "alice", "wrong password!")
    # Five consecutive failures: even the right password now gets the same answer.
    backed_off = login(gw, "alice")
    assert without_request_id(backed_off) == unknown
    time.sleep(1.1)  # 2^(5-5) s
    assert login(gw, "alice").status_code == 200


@pytest.mark.parametrize(
    ("typed", "variant"),
    [("alice", "\uff41\uff4c\uff49\uff43\uff45"), ("alice@example.com", "alice@\uff45xample.com")],
)
def test_back_off_holds_for_every_spelling_the_users_service_accepts(
    gw: Platform, users_app: Flask, typed: str, variant: str
):
    # The users service logs "ａｌｉｃｅ" (full width) in as "alice" (NFKC): if the
    # back-off counted spellings separately, each of the 2^n width mixes of a name would
    # get five fresh guesses.
    user(users_app)
    for _ in range(5):
        assert login(gw, typed, "wrong password!").status_code == 401
    assert login(gw, variant).status_code == 401
    time.sleep(1.1)  # 2^(5-5) s
    assert login(gw, variant).status_code == 200


def backoff_key(users_app: Flask, identifier: str) -> str:
    """The key the gateway counts the identifier's failures under (the users service's)."""
    return user_service(users_app).login_account(identifier)


def parallel_logins(gw: Platform, identifier: str, password: str, n: int) -> list[int]:
    """n logins released together by a barrier; their statuses."""
    barrier = threading.Barrier(n)
    statuses: list[int] = []

    def attempt() -> None:
        barrier.wait(timeout=10)
        statuses.append(login(gw, identifier, password).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return statuses


def test_parallel_guesses_get_no_more_tries_than_sequential_ones(
    gw: Platform, users_app: Flask, redis_server: Redis
):
    store = redis.Redis.from_url(gateway_redis_url(redis_server), decode_responses=True)
    user(users_app)
    failures = f"gw:fail:{backoff_key(users_app, 'alice')}"
    # A burst at a fresh account: five password checks, as if sent one after another.
    assert parallel_logins(gw, "alice", "wrong password!", 20) == [401] * 20
    assert store.get(failures) == "5"
    # The moment a back-off ends, a burst gets exactly one more check.
    store.delete(f"gw:lock:{backoff_key(users_app, 'alice')}")
    assert parallel_logins(gw, "alice", "wrong password!", 20) == [401] * 20
    assert store.get(failures) == "6"
    assert store.ttl(f"gw:lock:{backoff_key(users_app, 'alice')}") in (1, 2)


def test_an_attempt_without_a_verdict_does_not_count(
    gw: Platform, users_app: Flask, redis_server: Redis, monkeypatch: pytest.MonkeyPatch
):
    from common.errors import UpstreamUnavailable
    from gateway.adapters.upstream import Upstream

    store = redis.Redis.from_url(gateway_redis_url(redis_server), decode_responses=True)
    user(users_app)
    assert login(gw, "alice", "wrong password!").status_code == 401
    original = Upstream.call

    def check_down(self: Upstream, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if path == "/internal/credentials/verify":
            raise UpstreamUnavailable()
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(Upstream, "call", check_down)
    for _ in range(6):
        assert login(gw, "alice").status_code == 503
    assert store.get(f"gw:fail:{backoff_key(users_app, 'alice')}") == "1"
    monkeypatch.undo()
    assert login(gw, "alice").status_code == 200


def test_an_attempt_without_a_verdict_lifts_the_lock_it_set(
    gw: Platform, users_app: Flask, redis_server: Redis, monkeypatch: pytest.MonkeyPatch
):
    from common.errors import UpstreamUnavailable
    from gateway.adapters.upstream import Upstream

    store = redis.Redis.from_url(gateway_redis_url(redis_server), decode_responses=True)
    user(users_app)
    for _ in range(4):
        assert login(gw, "alice", "wrong password!").status_code == 401
    original = Upstream.call

    # The 5th attempt is admitted and, counted up front, locks the account — but the
    # users service never answers its password check.
    def check_down(self: Upstream, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if path == "/internal/credentials/verify":
            raise UpstreamUnavailable()
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(Upstream, "call", check_down)
    assert login(gw, "alice").status_code == 503
    monkeypatch.undo()
    assert store.get(f"gw:fail:{backoff_key(users_app, 'alice')}") == "4"
    assert not store.exists(f"gw:lock:{backoff_key(users_app, 'alice')}")
    assert login(gw, "alice").status_code == 200


@pytest.mark.parametrize(
    ("failing", "then"),
    [("alice", "alice@example.com"), ("ALICE@example.com", "alice"), ("alice", "ＡＬＩＣＥ")],
)
def test_one_back_off_counter_per_account_whichever_identifier_is_typed(
    gw: Platform, users_app: Flask, redis_server: Redis, failing: str, then: str
):
    # Counted per identifier, an account's username and email would give it twice the
    # guesses before back-off.
    user(users_app)
    store = gateway_store(redis_server)
    for _ in range(3):
        assert login(gw, failing, "wrong password!").status_code == 401
    for _ in range(2):
        assert login(gw, then, "wrong password!").status_code == 401
    account = backoff_key(users_app, then)
    assert account == backoff_key(users_app, failing)
    assert store.get(f"gw:fail:{account}") == "5"
    assert store.exists(f"gw:lock:{account}")
    store.expire(f"gw:lock:{account}", 30)  # however slow this machine is today
    assert login(gw, then).status_code == 401  # the right password, but backed off
    assert login(gw, failing).status_code == 401
    store.delete(f"gw:lock:{account}")  # the wait is over
    assert login(gw, then).status_code == 200
    assert not store.exists(f"gw:fail:{account}")


def test_the_back_off_key_names_the_account_and_tells_unknown_ones_nothing(
    users_app: Flask, users_db: None
):
    import re

    account = user(users_app)
    keys = {
        identifier: backoff_key(users_app, identifier)
        for identifier in (
            "alice",
            "ALICE@example.com",
            "ａｌｉｃｅ",
            "ghost",
            "ghost@example.com",
            "Ghost",
        )
    }
    assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys.values())
    assert keys["alice"] == keys["ALICE@example.com"] == keys["ａｌｉｃｅ"]
    # Unknown identifiers back off like known ones: one counter per canonical identifier.
    assert keys["ghost"] == keys["Ghost"] != keys["ghost@example.com"]
    assert keys["alice"] not in (keys["ghost"], keys["ghost@example.com"])
    assert account["id"] not in "".join(keys.values())


def test_a_backed_off_attempt_takes_as_long_as_a_check_and_answers_like_one(
    gw: Platform, users_app: Flask, redis_server: Redis, monkeypatch: pytest.MonkeyPatch
):
    """A back-off answered at once would show (argon2 takes ~100 ms), and with one
    counter per account, failing with the username and timing the email would tell
    that the two belong together: that the account exists."""
    from gateway.backoff_timing import CHECK_DURATIONS

    user(users_app)
    checked = []
    for _ in range(5):
        started = time.monotonic()
        login(gw, "alice", "wrong password!")
        checked.append(time.monotonic() - started)
    gateway_store(redis_server).expire(f"gw:lock:{backoff_key(users_app, 'alice')}", 30)
    monkeypatch.setattr(CHECK_DURATIONS, "sample", lambda: 0.4)
    started = time.monotonic()
    backed_off = login(gw, "alice@example.com", "wrong password!")
    assert time.monotonic() - started >= 0.4
    monkeypatch.undo()
    assert without_request_id(backed_off) == without_request_id(login(gw, "nobody", "x" * 12))
    # Without the stand-in: the wait is one of the worker's recent check durations.
    started = time.monotonic()
    login(gw, "alice", "wrong password!")
    assert time.monotonic() - started >= 0.5 * min(checked)


def test_back_off_grows_and_is_capped(gw: Platform, redis_server: Redis):
    from gateway.adapters.state import GatewayState

    state = GatewayState(redis.Redis.from_url(gateway_redis_url(redis_server)))
    account = digest("someone")[:32]
    ttls = []
    for _ in range(20):
        state.record_failure(account)
        ttls.append(state.redis.ttl(f"gw:lock:{account}"))
    assert ttls[:4] == [-2, -2, -2, -2]
    assert ttls[4:9] == [1, 2, 4, 8, 16]
    assert max(ttls) == 900  # 15 minutes, never permanent
    assert state.redis.ttl(f"gw:fail:{account}") > 0


def test_login_validates_the_body(gw: Platform):
    response = call(gw, "POST", "/api/auth/login", json={"identifier": "a"})
    assert (response.status_code, response.json()["error"]) == (400, "validation_error")


# -- MFA -------------------------------------------------------------------------------------


def enable_mfa(gw: Platform, session: Session) -> tuple[str, list[str], str]:
    enrol = call(
        gw, "PATCH", "/api/users/mfa/enable", json={"password": PASSWORD}, headers=session.auth()
    )
    assert enrol.status_code == 200, enrol.text
    secret = totp_secret(enrol.json()["provisioning_uri"])
    code = pyotp.TOTP(secret).now()
    confirmed = call(
        gw, "POST", "/api/users/mfa/confirm", json={"code": code}, headers=session.auth()
    )
    assert confirmed.status_code == 200, confirmed.text
    assert "X-Sessions-Invalidated" not in confirmed.headers
    return secret, confirmed.json()["recovery_codes"], code


def test_mfa_login_and_verify(gw: Platform, users_app: Flask, caplog: pytest.LogCaptureFixture):
    user(users_app)
    first = Session(login(gw, "alice"))
    _, recovery, used_code = enable_mfa(gw, first)
    # Enabling MFA ends the sessions that were opened without it.
    assert call(gw, "GET", "/api/users/me", headers=first.auth()).status_code == 401
    assert first.refresh(gw).status_code == 401

    step_one = login(gw, "alice")
    assert step_one.status_code == 200
    body = step_one.json()
    assert body["mfa_required"] is True
    assert "access_token" not in body
    assert "set-cookie" not in step_one.headers
    mfa_token = body["mfa_token"]
    # The code that confirmed enrolment was used: a replay is refused.
    replay = call(
        gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": mfa_token, "code": used_code}
    )
    assert (replay.status_code, replay.json()["error"]) == (401, "invalid_mfa")
    with caplog.at_level(logging.INFO, logger="audit"):
        verified = call(
            gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": mfa_token, "code": recovery[0]}
        )
    session = Session(verified)
    assert claims(session.access)["amr"] == ["pwd", "otp"]
    assert call(gw, "GET", "/api/users/me", headers=session.auth()).json()["mfa_enabled"] is True
    # Single use.
    again = call(
        gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": mfa_token, "code": recovery[1]}
    )
    assert again.status_code == 401
    assert "mfa_success" in caplog.text
    assert recovery[0] not in caplog.text
    assert mfa_token not in caplog.text


def test_mfa_token_opens_nothing_else_and_dies_after_five_wrong_codes(
    gw: Platform, users_app: Flask
):
    user(users_app)
    _, recovery, _ = enable_mfa(gw, Session(login(gw, "alice")))
    mfa_token = login(gw, "alice").json()["mfa_token"]
    as_bearer = bearer(mfa_token)
    for method, path in [
        ("GET", "/api/users/me"),
        ("GET", "/api/auth/sessions"),
        ("POST", "/api/auth/logout"),
        ("GET", "/api/users/mfa/qr"),
        ("POST", "/api/course"),
    ]:
        assert call(gw, method, path, headers=as_bearer).status_code == 401, path
    refresh = call(
        gw,
        "POST",
        "/api/auth/refresh",
        headers={"Cookie": f"refresh_token={mfa_token}", "X-CSRF-TOKEN": "x"},
    )
    assert refresh.status_code == 401
    answers = set()
    for code in ["000000", "111111", "222222", "333333", "12"]:
        wrong = call(
            gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": mfa_token, "code": code}
        )
        answers.add(json.dumps(without_request_id(wrong)))
    assert len(answers) == 1
    assert json.loads(next(iter(answers)))[0] == 401
    sixth = call(
        gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": mfa_token, "code": recovery[0]}
    )
    assert json.dumps(without_request_id(sixth)) in answers


def test_mfa_token_lives_at_most_five_minutes(gw: Platform, users_app: Flask, redis_server: Redis):
    user(users_app)
    enable_mfa(gw, Session(login(gw, "alice")))
    mfa_token = login(gw, "alice").json()["mfa_token"]
    ttl = gateway_store(redis_server).ttl(f"gw:mfa:{digest(mfa_token)}")
    assert 0 < ttl <= 300


def test_mfa_disable_ends_every_session(gw: Platform, users_app: Flask):
    user(users_app)
    _, recovery, _ = enable_mfa(gw, Session(login(gw, "alice")))
    mfa_token = login(gw, "alice").json()["mfa_token"]
    session = Session(
        call(gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": mfa_token, "code": recovery[0]})
    )
    disabled = call(
        gw,
        "PATCH",
        "/api/users/mfa/disable",
        json={"password": PASSWORD, "code": recovery[1]},
        headers=session.auth(),
    )
    assert (disabled.status_code, disabled.json()["mfa_enabled"]) == (200, False), disabled.text
    assert "X-Sessions-Invalidated" not in disabled.headers
    assert call(gw, "GET", "/api/users/me", headers=session.auth()).status_code == 401
    assert session.refresh(gw).status_code == 401
    # Without MFA the password alone logs in again.
    fresh = Session(login(gw, "alice"))
    assert call(gw, "GET", "/api/users/me", headers=fresh.auth()).status_code == 200


NEW_PASSWORD = "an entirely new passphrase 42"


def reset_password(gw: Platform, users_app: Flask, _session: Session) -> None:
    assert call(gw, "POST", "/api/users/password/forgot", json={"identifier": "alice"}).is_success
    token = reset_token(users_app, "alice@example.com")
    body = {"token": token, "new_password": NEW_PASSWORD}
    assert call(gw, "POST", "/api/users/password/reset", json=body).status_code == 200


def change_password(gw: Platform, _users_app: Flask, session: Session) -> None:
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    changed = call(gw, "POST", "/api/users/me/password", json=body, headers=session.auth())
    assert changed.status_code == 200, changed.text


@pytest.mark.parametrize("new_password", [reset_password, change_password])
def test_a_pending_mfa_login_dies_with_a_password_reset_or_change(
    gw: Platform, users_app: Flask, redis_server: Redis, new_password: Any
):
    user(users_app)
    secret, recovery, _ = enable_mfa(gw, Session(login(gw, "alice")))
    first_step = {"mfa_token": login(gw, "alice").json()["mfa_token"], "code": recovery[0]}
    victim = Session(call(gw, "POST", "/api/auth/mfa/verify", json=first_step))
    # The attacker knows the old password and has got as far as the second step...
    mfa_token = login(gw, "alice").json()["mfa_token"]
    # ...then the victim sets a new password, which ends every session.
    new_password(gw, users_app, victim)
    # A code the users service accepts (the next step: the confirming one was used).
    code = pyotp.TOTP(secret).at(time.time() + 30)
    late = call(gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": mfa_token, "code": code})
    assert late.status_code == 401, late.text
    assert without_request_id(late) == without_request_id(
        call(gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": "x" * 43, "code": "000000"})
    )
    assert not gateway_store(redis_server).exists(f"gw:mfa:{digest(mfa_token)}")
    # The owner, with the new password, still gets in.
    fresh = login(gw, "alice", NEW_PASSWORD).json()["mfa_token"]
    verified = call(
        gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": fresh, "code": recovery[1]}
    )
    assert verified.status_code == 200, verified.text


# -- refresh sessions ------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_kills_the_family(
    gw: Platform, users_app: Flask, caplog: pytest.LogCaptureFixture
):
    user(users_app)
    first = Session(login(gw, "alice"))
    rotated = first.refresh(gw)
    second = Session(rotated)
    assert second.refresh_cookie != first.refresh_cookie
    assert claims(second.access)["sid"] == claims(first.access)["sid"]
    assert call(gw, "GET", "/api/users/me", headers=second.auth()).status_code == 200
    third = Session(second.refresh(gw))
    with caplog.at_level(logging.INFO, logger="audit"):
        reuse = first.refresh(gw)
    assert reuse.status_code == 401
    assert "refresh_token_reuse" in caplog.text
    # The whole family is gone: the newest refresh token and its access token too.
    assert third.refresh(gw).status_code == 401
    assert call(gw, "GET", "/api/users/me", headers=third.auth()).status_code == 401


def test_concurrent_refresh_leaves_at_most_one_live_successor(gw: Platform, users_app: Flask):
    user(users_app)
    session = Session(login(gw, "alice"))
    barrier = threading.Barrier(10)
    results: list[httpx.Response] = []

    def race() -> None:
        barrier.wait()
        results.append(session.refresh(gw))

    threads = [threading.Thread(target=race) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [Session(r) for r in results if r.status_code == 200]
    assert len(winners) <= 1
    assert all(r.status_code in (200, 401) for r in results)
    live = [w for w in winners if w.refresh(gw).status_code == 200]
    assert len(live) <= 1


def test_refresh_needs_the_csrf_header_and_post(gw: Platform, users_app: Flask):
    user(users_app)
    session = Session(login(gw, "alice"))
    missing = session.refresh(gw, csrf=False)
    assert (missing.status_code, missing.json()["error"]) == (401, "unauthorized")
    wrong = call(
        gw,
        "POST",
        "/api/auth/refresh",
        headers={"Cookie": f"refresh_token={session.refresh_cookie}", "X-CSRF-TOKEN": "nope"},
    )
    assert wrong.status_code == 401
    as_get = call(
        gw,
        "GET",
        "/api/auth/refresh",
        headers={"Cookie": f"refresh_token={session.refresh_cookie}", "X-CSRF-TOKEN": session.csrf},
    )
    assert (as_get.status_code, as_get.json()["error"]) == (405, "method_not_allowed")
    assert session.refresh(gw).status_code == 200


def test_logout_kills_the_access_token_and_the_refresh_cookie(gw: Platform, users_app: Flask):
    user(users_app)
    session = Session(login(gw, "alice"))
    other = Session(login(gw, "alice"))
    out = call(gw, "POST", "/api/auth/logout", headers=session.auth())
    assert out.status_code == 204
    cleared = set_cookies(out)
    assert cleared["refresh_token"].value == ""
    assert cleared["refresh_token"]["path"] == "/api/auth"
    assert call(gw, "GET", "/api/users/me", headers=session.auth()).status_code == 401
    assert session.refresh(gw).status_code == 401
    assert call(gw, "GET", "/api/users/me", headers=other.auth()).status_code == 200


def test_logout_blocklists_the_access_token_until_it_expires(
    gw: Platform, users_app: Flask, redis_server: Redis
):
    user(users_app)
    session = Session(login(gw, "alice"))
    token = claims(session.access)
    assert call(gw, "POST", "/api/auth/logout", headers=session.auth()).status_code == 204
    ttl = gateway_store(redis_server).ttl(f"gw:bl:{token['jti']}")
    remaining = token["exp"] - time.time()
    # Kept exactly as long as the token could be presented, then forgotten (never -1).
    assert remaining - 5 <= ttl <= remaining + 1


def test_password_reset_kills_existing_tokens(gw: Platform, users_app: Flask):
    user(users_app)
    session = Session(login(gw, "alice"))
    forgot = call(gw, "POST", "/api/users/password/forgot", json={"identifier": "alice"})
    assert forgot.status_code == 202
    token = reset_token(users_app, "alice@example.com")
    new_password = "an entirely new passphrase 42"
    reset = call(
        gw, "POST", "/api/users/password/reset", json={"token": token, "new_password": new_password}
    )
    assert reset.status_code == 200, reset.text
    assert "X-Sessions-Invalidated" not in reset.headers
    assert call(gw, "GET", "/api/users/me", headers=session.auth()).status_code == 401
    assert session.refresh(gw).status_code == 401
    assert login(gw, "alice").status_code == 401
    assert login(gw, "alice", new_password).status_code == 200


def test_password_change_ends_every_session(gw: Platform, users_app: Flask):
    user(users_app)
    session = Session(login(gw, "alice"))
    other = Session(login(gw, "alice"))
    new_password = "an entirely new passphrase 42"
    changed = call(
        gw,
        "POST",
        "/api/users/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=session.auth(),
    )
    assert changed.status_code == 200, changed.text
    assert "X-Sessions-Invalidated" not in changed.headers
    for old in (session, other):
        assert call(gw, "GET", "/api/users/me", headers=old.auth()).status_code == 401
        assert old.refresh(gw).status_code == 401
    assert login(gw, "alice").status_code == 401
    fresh = Session(login(gw, "alice", new_password))
    assert call(gw, "GET", "/api/users/me", headers=fresh.auth()).status_code == 200


def test_session_lifetime_slides_with_use_but_never_passes_the_absolute_end(
    gw: Platform, users_app: Flask, redis_server: Redis
):
    user(users_app)
    store = gateway_store(redis_server)
    idle = 24 * 3600  # refresh_token_idle_hours (default); the absolute end is 14 days away
    session = Session(login(gw, "alice"))
    key = f"gw:sess:{claims(session.access)['sid']}"
    assert idle - 5 <= store.ttl(key) <= idle
    # Each refresh restarts the idle lifetime.
    store.expire(key, 30)
    session = Session(session.refresh(gw))
    assert idle - 5 <= store.ttl(key) <= idle
    # Near the absolute end, the session, the refresh token and its cookie end with it.
    end_ms = now_ms() + 30_000
    store.hset(key, "abs", end_ms)
    rotated = session.refresh(gw)
    session = Session(rotated)
    assert 0 < store.ttl(key) <= 30
    assert claims(session.refresh_cookie)["exp"] <= end_ms // 1000 + 1
    assert 0 < int(set_cookies(rotated)["refresh_token"]["max-age"]) <= 30
    # Past it, refresh is refused and the session (with its access tokens) is gone.
    store.hset(key, "abs", now_ms() - 1)
    assert session.refresh(gw).status_code == 401
    assert not store.exists(key)
    assert call(gw, "GET", "/api/users/me", headers=session.auth()).status_code == 401
    # An idle session that expires is gone too.
    idle_one = Session(login(gw, "alice"))
    store.pexpire(f"gw:sess:{claims(idle_one.access)['sid']}", 50)
    time.sleep(0.2)
    assert idle_one.refresh(gw).status_code == 401
    assert call(gw, "GET", "/api/users/me", headers=idle_one.auth()).status_code == 401


def test_sessions_list_and_revoke(gw: Platform, users_app: Flask):
    user(users_app)
    user(users_app, "bob")
    laptop = Session(
        call(
            gw,
            "POST",
            "/api/auth/login",
            json={"identifier": "alice", "password": PASSWORD},
            headers={"User-Agent": "laptop"},
        )
    )
    phone = Session(login(gw, "alice"))
    bob = Session(login(gw, "bob"))
    listed = call(gw, "GET", "/api/auth/sessions", headers=laptop.auth())
    sessions = listed.json()["sessions"]
    assert len(sessions) == 2
    mine = next(s for s in sessions if s["current"])
    assert (mine["user_agent"], mine["ip"]) == ("laptop", "127.0.0.1")
    assert mine["created_at"].endswith("Z") or "+00:00" in mine["created_at"]
    phone_id = claims(phone.access)["sid"]
    assert (
        call(gw, "DELETE", f"/api/auth/sessions/{phone_id}", headers=bob.auth()).status_code == 404
    )
    assert (
        call(gw, "DELETE", f"/api/auth/sessions/{phone_id}", headers=laptop.auth()).status_code
        == 204
    )
    assert call(gw, "GET", "/api/users/me", headers=phone.auth()).status_code == 401
    assert phone.refresh(gw).status_code == 401
    assert len(call(gw, "GET", "/api/auth/sessions", headers=laptop.auth()).json()["sessions"]) == 1


# -- tokens ----------------------------------------------------------------------------------


def test_bad_tokens_are_401(gw: Platform, users_app: Flask):
    account = user(users_app)
    session = Session(login(gw, "alice"))
    header, payload, signature = session.access.split(".")
    forged_payload = (
        base64.urlsafe_b64encode(json.dumps({**claims(session.access), "role": "admin"}).encode())
        .rstrip(b"=")
        .decode()
    )
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    with gw.app.app_context():
        expired = mint_access_token(gw.app, account["id"], exp=int(time.time()) - 60)
        refresh = create_refresh_token(
            identity=account["id"], additional_claims=claims(session.access) | {"type": "refresh"}
        )
        unbound = create_access_token(identity=account["id"], additional_claims={"role": "user"})
    bad = {
        "tampered": f"{header}.{forged_payload}.{signature}",
        "alg_none": f"{none_header}.{forged_payload}.",
        "expired": expired,
        "refresh_as_access": refresh,
        "refresh_cookie_as_access": session.refresh_cookie,
        "no_session": unbound,
        "garbage": "not-a-jwt",
    }
    for name, token in bad.items():
        response = call(gw, "GET", "/api/users/me", headers=bearer(token))
        assert (response.status_code, response.json()["error"]) == (401, "unauthorized"), name
    assert call(gw, "GET", "/api/users/me", headers=session.auth()).status_code == 200


def test_access_token_as_refresh_cookie_is_401(gw: Platform, users_app: Flask):
    user(users_app)
    session = Session(login(gw, "alice"))
    response = call(
        gw,
        "POST",
        "/api/auth/refresh",
        headers={"Cookie": f"refresh_token={session.access}", "X-CSRF-TOKEN": session.csrf},
    )
    assert response.status_code == 401


def test_tokens_issued_before_tokens_valid_after_are_refused(
    gw: Platform, users_app: Flask, redis_server: Redis
):
    account = user(users_app)
    store = gateway_store(redis_server)
    session = Session(login(gw, "alice"))
    issued = claims(session.access)
    # A change made in the users service alone (no gateway call, so no invalidation
    # header): only tokens_valid_after moves, just past this token's issue time.
    user_service(users_app).repository.update_fields(
        account["id"], {"tokens_valid_after": issued["iat_ms"] + 1}
    )
    cached = f"gw:tva:{account['id']}"
    store.delete(cached)  # what the cache's 60 s TTL does
    assert call(gw, "GET", "/api/users/me", headers=session.auth()).status_code == 401
    # The session itself is alive: the refusal is the tokens_valid_after check's.
    assert store.exists(f"gw:sess:{issued['sid']}")
    assert session.refresh(gw).status_code == 401
    # The fresh value was fetched from the users service and cached for at most 60 s.
    assert int(store.get(cached)) == issued["iat_ms"] + 1
    assert 0 < store.ttl(cached) <= 60
    fresh = Session(login(gw, "alice"))
    assert call(gw, "GET", "/api/users/me", headers=fresh.auth()).status_code == 200


def test_cookie_attributes(
    redis_server: Redis, users_server: LiveServer, users_app: Flask, users_db
):
    user(users_app)
    app = create_app(
        gateway_settings(users_url=users_server.url, redis_url=gateway_redis_url(redis_server))
    )
    response = app.test_client().post(
        "/api/auth/login", json={"identifier": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    headers = {h.split("=", 1)[0]: h for h in response.headers.getlist("Set-Cookie")}
    refresh = headers["__Secure-refresh_token"].split("; ")
    assert {"Secure", "HttpOnly", "Path=/api/auth", "SameSite=Strict"} <= set(refresh)
    assert "Max-Age=1209600" in refresh  # the absolute lifetime, 14 days
    csrf = headers["__Secure-csrf_refresh_token"].split("; ")
    assert {"Secure", "SameSite=Strict"} <= set(csrf)
    assert "HttpOnly" not in csrf


# -- audit ---------------------------------------------------------------------------------


def test_audit_events_are_logged_without_secrets(
    gw: Platform, users_app: Flask, caplog: pytest.LogCaptureFixture
):
    user(users_app)
    stranger = "nobody-in-particular@example.com"
    wrong_password = "not the password at all"
    with caplog.at_level(logging.INFO):
        setup = Session(login(gw, "alice"))
        secret, recovery, confirm_code = enable_mfa(gw, setup)
        assert login(gw, stranger, wrong_password).status_code == 401
        mfa_token = login(gw, "alice").json()["mfa_token"]
        wrong = call(
            gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": mfa_token, "code": "000000"}
        )
        assert wrong.status_code == 401
        verified = call(
            gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": mfa_token, "code": recovery[0]}
        )
        session = Session(verified)
        refreshed = session.refresh(gw)
        rotated = Session(refreshed)
        assert call(gw, "POST", "/api/auth/logout", headers=rotated.auth()).status_code == 204
    events = {r.getMessage() for r in caplog.records if r.name == "audit"}
    assert {
        "login_success",
        "login_failure",
        "login_mfa_required",
        "mfa_failure",
        "mfa_success",
        "mfa_enabled",
        "refresh",
        "logout",
    } <= events
    secrets = {
        PASSWORD,
        wrong_password,
        secret,
        confirm_code,
        *recovery,
        mfa_token,
        setup.access,
        setup.refresh_cookie,
        session.access,
        session.refresh_cookie,
        session.csrf,
        rotated.access,
        rotated.refresh_cookie,
        rotated.csrf,
    }
    formatter = JsonFormatter("test")
    lines = [formatter.format(record) for record in caplog.records]
    leaks = [(value, line) for line in lines for value in secrets if value in line]
    assert leaks == []
    # A failed identifier is logged only as a hash.
    assert not [r for r in caplog.records if r.name == "audit" and stranger in formatter.format(r)]


# -- shared store ----------------------------------------------------------------------------


def test_redis_down_is_503(users_server: LiveServer, users_app: Flask, users_db):
    user(users_app)
    settings = gateway_settings(
        users_url=users_server.url, redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    client = create_app(settings).test_client()
    started = time.monotonic()
    responses = [
        client.post("/api/auth/login", json={"identifier": "alice", "password": PASSWORD}),
        client.post("/api/auth/mfa/verify", json={"mfa_token": "x" * 40, "code": "123456"}),
        client.post("/api/users/password/forgot", json={"identifier": "alice"}),
    ]
    with client.application.app_context():
        token = create_refresh_token(identity="u", additional_claims={"sid": "s", "iat_ms": 1})
        access = create_access_token(
            identity="u", additional_claims={"sid": "s", "iat_ms": 1, "role": "user"}
        )
    client.set_cookie("__Secure-refresh_token", token, path="/api/auth")
    csrf = {"X-CSRF-TOKEN": claims(token)["csrf"]}
    responses.append(client.post("/api/auth/refresh", headers=csrf))
    responses.append(client.get("/api/users/me", headers=bearer(access)))
    for response in responses:
        assert (response.status_code, response.json["error"]) == (503, "service_unavailable")
    assert time.monotonic() - started < 5


def test_in_process_store_is_for_development_only(
    users_server: LiveServer, users_app: Flask, users_db, caplog
):
    with pytest.raises(ValueError, match="REDIS_URL"):
        GatewaySettings(
            environment="production", jwt_secret_key="k" * 40, internal_api_key="i" * 40
        )
    user(users_app)
    with caplog.at_level(logging.WARNING):
        app = create_app(
            GatewaySettings(
                environment="development",
                users_url=users_server.url,
                jwt_secret_key="dev-key-" * 5,
                internal_api_key=gateway_settings().internal_api_key,
                cookie_secure=False,
            )
        )
    assert "in_process_store" in caplog.text
    client = app.test_client()
    login_response = client.post(
        "/api/auth/login", json={"identifier": "alice", "password": PASSWORD}
    )
    assert login_response.status_code == 200
    csrf = client.get_cookie("csrf_refresh_token", path="/")
    assert csrf is not None
    refreshed = client.post("/api/auth/refresh", headers={"X-CSRF-TOKEN": csrf.value})
    assert refreshed.status_code == 200
    me = client.get("/api/users/me", headers=bearer(refreshed.json["access_token"]))
    assert me.status_code == 200


def test_an_insecure_refresh_cookie_is_refused_in_production():
    production = {
        "environment": "production",
        "jwt_secret_key": "k" * 40,
        "internal_api_key": "i" * 40,
        "redis_url": "redis://127.0.0.1:1/0",
    }
    assert GatewaySettings(**production).cookie_secure  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="COOKIE_SECURE"):
        GatewaySettings(**production, cookie_secure=False)  # type: ignore[arg-type]
    local = GatewaySettings(**{**production, "environment": "test"}, cookie_secure=False)  # type: ignore[arg-type]
    assert not local.cookie_secure


# -- a password reset racing a login -------------------------------------------------------


def reset_right_after(
    monkeypatch: pytest.MonkeyPatch, path: str, reset: Any, *args: Any
) -> list[bool]:
    """Make the users-service call to ``path`` run ``reset`` right after it succeeds:
    the check has passed, the gateway has not yet cached or opened anything."""
    from gateway.adapters.upstream import Upstream

    original = Upstream.call
    fired: list[bool] = []

    def then_reset(self: Upstream, method: str, called: str, **kwargs: Any) -> httpx.Response:
        answer = original(self, method, called, **kwargs)
        if called == path and answer.status_code == 200 and not fired:
            fired.append(True)  # before the reset: it must not trigger itself
            reset(*args)
        return answer

    monkeypatch.setattr(Upstream, "call", then_reset)
    return fired


def assert_no_sessions(store: redis.Redis, user_id: str) -> None:
    assert not store.smembers(f"gw:us:{user_id}")
    owners = [store.hget(key, "uid") for key in store.scan_iter("gw:sess:*")]
    assert user_id not in owners


@pytest.mark.parametrize("new_password", [reset_password, change_password])
def test_a_login_checked_against_the_old_password_dies_with_the_reset(
    gw: Platform,
    users_app: Flask,
    redis_server: Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    new_password: Any,
):
    account = user(users_app)
    store = gateway_store(redis_server)
    victim = Session(login(gw, "alice"))
    # The attacker's old password passes the check; the owner's reset lands before the
    # gateway opens the session.
    fired = reset_right_after(
        monkeypatch, "/internal/credentials/verify", new_password, gw, users_app, victim
    )
    with caplog.at_level(logging.INFO, logger="audit"):
        late = login(gw, "alice")
    assert fired
    monkeypatch.undo()
    assert late.status_code == 401, late.text
    assert without_request_id(late) == without_request_id(login(gw, "alice", "wrong password!"))
    refusals = [r for r in caplog.records if getattr(r, "reason", "") == "credentials_changed"]
    assert [r.getMessage() for r in refusals] == ["login_failure"]
    assert_no_sessions(store, account["id"])
    # No stale tokens_valid_after was cached over the invalidation.
    cached = store.get(f"gw:tva:{account['id']}")
    assert cached is None or int(cached) > claims(victim.access)["iat_ms"]
    fresh = Session(login(gw, "alice", NEW_PASSWORD))
    assert call(gw, "GET", "/api/users/me", headers=fresh.auth()).status_code == 200


def test_an_mfa_login_verified_before_a_reset_dies_with_it(
    gw: Platform, users_app: Flask, redis_server: Redis, monkeypatch: pytest.MonkeyPatch
):
    account = user(users_app)
    store = gateway_store(redis_server)
    _, recovery, _ = enable_mfa(gw, Session(login(gw, "alice")))
    mfa_token = login(gw, "alice").json()["mfa_token"]
    # The code is accepted (with the old tokens_valid_after); the reset lands next.
    reset_right_after(monkeypatch, "/internal/mfa/verify", reset_password, gw, users_app, None)
    late = call(
        gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": mfa_token, "code": recovery[0]}
    )
    monkeypatch.undo()
    assert late.status_code == 401, late.text
    assert without_request_id(late) == without_request_id(
        call(gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": "x" * 43, "code": "000000"})
    )
    assert_no_sessions(store, account["id"])
    fresh = login(gw, "alice", NEW_PASSWORD).json()["mfa_token"]
    verified = call(
        gw, "POST", "/api/auth/mfa/verify", json={"mfa_token": fresh, "code": recovery[1]}
    )
    assert verified.status_code == 200, verified.text
