"""CORS for the listed front-end origins, and the Origin check of the cookie routes:
nginx → gateway → users, real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
import redis
from flask import Flask
from pydantic import ValidationError

from devtools.devservers import Redis
from devtools.live import LiveServer
from gateway import create_app
from gateway.testing import Platform, bearer, gateway_settings, start_platform
from users.testing import PASSWORD, create_active_user

GATEWAY_DB = 11
FRONTEND = "http://localhost:3000"
OTHER_FRONTEND = "http://127.0.0.1:3000"
EVIL = "https://evil.example"


def store_url(server: Redis) -> str:
    return server.url.rsplit("/", 1)[0] + f"/{GATEWAY_DB}"


@pytest.fixture(scope="module")
def cors_platform(redis_server: Redis, users_server: LiveServer) -> Iterator[Platform]:
    settings = gateway_settings(
        users_url=users_server.url,
        redis_url=store_url(redis_server),
        cookie_secure=False,
        auth_rate_limit="1000/minute",
        cors_allowed_origins=f"{FRONTEND}, {OTHER_FRONTEND}/",
    )
    platform = start_platform(settings)
    yield platform
    platform.close()


@pytest.fixture
def gw(cors_platform: Platform, redis_server: Redis, users_db: None) -> Platform:
    redis.Redis.from_url(store_url(redis_server)).flushdb()
    return cors_platform


def call(gw: Platform, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request without a cookie jar: each test says exactly what it sends."""
    return httpx.request(method, gw.nginx.url + path, timeout=10, **kwargs)


class Session:
    """What a browser holds after login: the access token and both cookies."""

    def __init__(self, gw: Platform, users_app: Flask, *, new_user: bool = True) -> None:
        if new_user:
            create_active_user(
                users_app, username="alice", email="alice@example.com", password=PASSWORD
            )
        response = call(
            gw, "POST", "/api/auth/login", json={"identifier": "alice", "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        self.access = response.json()["access_token"]
        cookies = SimpleCookie()
        for header in response.headers.get_list("set-cookie"):
            cookies.load(header)
        self.refresh_cookie = cookies["refresh_token"].value
        self.csrf = cookies["csrf_refresh_token"].value

    def refresh(self, gw: Platform, **headers: str) -> httpx.Response:
        sent = {"Cookie": f"refresh_token={self.refresh_cookie}", "X-CSRF-TOKEN": self.csrf}
        return call(gw, "POST", "/api/auth/refresh", headers={**sent, **headers})


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {
        name: value
        for name, value in response.headers.items()
        if name.lower().startswith("access-control-")
    }


# -- CORS ------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", [FRONTEND, OTHER_FRONTEND])
def test_a_preflight_from_a_listed_origin_is_a_204_naming_it(gw: Platform, origin: str):
    response = call(
        gw,
        "OPTIONS",
        "/api/auth/refresh",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-csrf-token",
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    methods = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= methods
    allowed = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert allowed == {"authorization", "content-type", "x-csrf-token", "x-request-id"}
    assert "Origin" in response.headers["Vary"]
    assert int(response.headers["Access-Control-Max-Age"]) > 0


@pytest.mark.parametrize(
    "origin", [EVIL, "http://localhost:3001", "null", "https://localhost:3000"]
)
def test_an_unlisted_origin_gets_no_cors_header(gw: Platform, origin: str):
    preflight = call(
        gw,
        "OPTIONS",
        "/api/auth/refresh",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code != 204
    assert cors_headers(preflight) == {}
    actual = call(gw, "GET", "/api/openapi.json", headers={"Origin": origin})
    assert actual.status_code == 200
    assert cors_headers(actual) == {}
    assert "Origin" in actual.headers["Vary"]


def test_answers_to_a_listed_origin_carry_the_cors_headers(gw: Platform):
    for path, status in [("/api/openapi.json", 200), ("/api/no-such-thing", 404)]:
        response = call(gw, "GET", path, headers={"Origin": FRONTEND})
        assert response.status_code == status
        assert response.headers["Access-Control-Allow-Origin"] == FRONTEND
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"X-Request-ID", "Retry-After"} <= exposed
        assert "Origin" in response.headers["Vary"]
    # An error is readable by the page too: the envelope, with the CORS headers.
    assert response.json()["error"] == "not_found"


def test_without_listed_origins_nothing_is_cross_origin(users_server: LiveServer):
    app = create_app(gateway_settings(users_url=users_server.url))
    client = app.test_client()
    preflight = client.options(
        "/api/auth/refresh",
        headers={"Origin": FRONTEND, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code != 204
    assert not [
        name for name, _ in preflight.headers.items() if name.lower().startswith("access-control-")
    ]
    actual = client.get("/api/openapi.json", headers={"Origin": FRONTEND})
    assert "Access-Control-Allow-Origin" not in actual.headers


# -- the Origin check of the cookie routes ---------------------------------------------------


def test_a_refresh_from_a_foreign_origin_is_refused_and_changes_nothing(
    gw: Platform, users_app: Flask
):
    session = Session(gw, users_app)
    for headers in (
        {"Origin": EVIL},
        {"Origin": "null"},
        {"Referer": f"{EVIL}/page"},
        # Origin wins over a Referer that would pass.
        {"Origin": EVIL, "Referer": f"{gw.nginx.url}/"},
        # Same host, another port or scheme: another origin.
        {"Origin": "http://127.0.0.1"},
        {"Origin": gw.nginx.url.replace("http://", "https://")},
    ):
        refused = session.refresh(gw, **headers)
        assert refused.status_code == 403, headers
        assert refused.headers["Content-Type"] == "application/json"
        body = refused.json()
        assert body["error"] == "origin_not_allowed"
        assert set(body) == {"message", "error", "request_id"}
        assert "access_token" not in refused.text
        assert "set-cookie" not in refused.headers
    # Nothing was rotated: the same cookie still refreshes (a rotation would have made it a
    # reuse, which kills the family).
    assert session.refresh(gw).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, a server, a mobile app
        {"Origin": "SAME"},
        {"Referer": "SAME/courses/1"},
        {"Origin": FRONTEND},
        {"Origin": OTHER_FRONTEND},
        {"Referer": f"{FRONTEND}/login"},
    ],
    ids=["no-origin", "same-origin", "same-origin-referer", "listed", "listed-2", "listed-referer"],
)
def test_a_refresh_from_the_platform_or_a_listed_origin_works(
    gw: Platform, users_app: Flask, headers: dict[str, str]
):
    session = Session(gw, users_app)
    sent = {name: value.replace("SAME", gw.nginx.url) for name, value in headers.items()}
    response = session.refresh(gw, **sent)
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]
    if sent.get("Origin") in (FRONTEND, OTHER_FRONTEND):
        assert response.headers["Access-Control-Allow-Origin"] == sent["Origin"]
        assert response.headers["Access-Control-Allow-Credentials"] == "true"


def test_a_logout_with_the_cookie_from_a_foreign_origin_revokes_nothing(
    gw: Platform, users_app: Flask
):
    session = Session(gw, users_app)
    refused = call(
        gw,
        "POST",
        "/api/auth/logout",
        headers={
            **bearer(session.access),
            "Cookie": f"refresh_token={session.refresh_cookie}",
            "Origin": EVIL,
        },
    )
    assert (refused.status_code, refused.json()["error"]) == (403, "origin_not_allowed")
    assert call(gw, "GET", "/api/auth/sessions", headers=bearer(session.access)).status_code == 200
    assert session.refresh(gw).status_code == 200


def test_a_logout_from_a_listed_origin_or_without_one_works(gw: Platform, users_app: Flask):
    first = Session(gw, users_app)
    listed = call(
        gw,
        "POST",
        "/api/auth/logout",
        headers={
            **bearer(first.access),
            "Cookie": f"refresh_token={first.refresh_cookie}",
            "Origin": FRONTEND,
        },
    )
    assert listed.status_code == 204
    assert listed.headers["Access-Control-Allow-Origin"] == FRONTEND
    second = Session(gw, users_app, new_user=False)
    plain = call(gw, "POST", "/api/auth/logout", headers=bearer(second.access))
    assert plain.status_code == 204


def test_public_origin_is_the_platforms_own_behind_a_tls_proxy(
    users_server: LiveServer, redis_server: Redis
):
    """Behind a proxy that ends TLS and talks HTTP to nginx, the request says http://;
    PUBLIC_ORIGIN names the origin browsers use."""
    app = create_app(
        gateway_settings(
            users_url=users_server.url,
            redis_url=store_url(redis_server),
            public_origin="https://Courses.Example.com:443/",
        )
    )
    client = app.test_client()
    for origin, status in [
        ("https://courses.example.com", 401),  # past the check: no cookie, so a 401
        ("http://localhost", 401),  # the origin the request was addressed to
        (EVIL, 403),
    ]:
        response = client.post("/api/auth/refresh", headers={"Origin": origin})
        assert response.status_code == status, origin


# -- settings ---------------------------------------------------------------------------------


def test_listed_origins_are_normalised_and_checked():
    settings = gateway_settings(
        cors_allowed_origins=" HTTPS://App.Example.com:443 ,http://localhost:3000/,,"
    )
    assert settings.cors_origins == {"https://app.example.com", "http://localhost:3000"}
    assert gateway_settings().cors_origins == frozenset()
    for bad in ["*", "app.example.com", "https://app.example.com/path", "ftp://x", "null"]:
        with pytest.raises(ValidationError):
            gateway_settings(cors_allowed_origins=bad)
    with pytest.raises(ValidationError):
        gateway_settings(public_origin="https://x.example/app")


def test_origin_of():
    from gateway.settings import origin_of

    assert origin_of("https://EXAMPLE.com/a?b#c") == "https://example.com"
    assert origin_of("http://example.com:80") == "http://example.com"
    assert origin_of("http://example.com:8080") == "http://example.com:8080"
    assert origin_of("http://[::1]:3000/") == "http://[::1]:3000"
    for nothing in [
        "null",
        "",
        "example.com",
        "javascript:alert(1)",
        "http://u:p@x/",
        "http://x:99999",
    ]:
        assert origin_of(nothing) is None


def test_make_run_lets_a_local_front_end_dev_server_in(monkeypatch: pytest.MonkeyPatch, tmp_path):
    from devtools import launcher
    from devtools.launcher import DEV_CORS_ALLOWED_ORIGINS

    monkeypatch.setattr(launcher, "importable", lambda _module: True)
    config = launcher.PlatformConfig(
        ports=launcher.Ports.free(),
        run_dir=tmp_path,
        internal_api_key="k",
        jwt_secret_key="j",
        totp_encryption_key="t",
        fakturownia_api_token="f",
        courses_database_url="sqlite://",
        enrolments_database_url="sqlite://",
    )
    gateway = next(s for s in launcher.plan(config) if s.name == "gateway")
    listed = gateway_settings(cors_allowed_origins=gateway.env["CORS_ALLOWED_ORIGINS"])
    assert listed.cors_origins == {"http://localhost:3000", "http://127.0.0.1:3000"}
    assert gateway.env["CORS_ALLOWED_ORIGINS"] == DEV_CORS_ALLOWED_ORIGINS
