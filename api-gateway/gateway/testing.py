"""pytest fixtures and helpers for the gateway, usable by every test tier."""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask
from flask_jwt_extended import create_access_token

from devtools.devservers import Nginx, Redis
from devtools.helpers import TEST_INTERNAL_KEY, TEST_JWT_SECRET
from devtools.live import LiveServer
from gateway import create_app
from gateway.adapters.state import PREFIX, GatewayState, now_ms
from gateway.jwt import new_jti
from gateway.settings import GatewaySettings

_fallback_redis: Redis | None = None


def fallback_redis_url() -> str:
    """A Redis for gateways built without an explicit ``redis_url`` (started once, on
    first use, stopped at exit): outside development the gateway refuses to run
    without a shared store."""
    global _fallback_redis
    if _fallback_redis is None:
        _fallback_redis = Redis().start()
        atexit.register(_fallback_redis.stop)
    return _fallback_redis.url


def gateway_settings(**overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "environment": "test",
        "jwt_secret_key": TEST_JWT_SECRET,
        "internal_api_key": TEST_INTERNAL_KEY,
        "upstream_timeout": 5.0,
    }
    values.update(overrides)
    if not values.get("redis_url") and values["environment"] != "development":
        values["redis_url"] = fallback_redis_url()
    return GatewaySettings(**values)


def mint_access_token(app: Flask, user_id: str, role: str = "user", **claims: Any) -> str:
    """A token as login would issue it (used by tests that are not about login): a live
    session in the gateway's store, ``iat_ms``/``amr``/``sid`` claims, and, unless the
    store already knows better, ``tokens_valid_after`` = 0 for the user."""
    with app.app_context():
        state: GatewayState = app.extensions["container"].state()
        session_id, _ = state.create_session(
            user_id=user_id,
            role=role,
            amr=["pwd"],
            refresh_jti=new_jti(),
            ip="127.0.0.1",
            user_agent="gateway.testing",
            idle_seconds=3600,
            absolute_seconds=3600,
            started_ms=now_ms(),
        )
        state.redis.set(f"{PREFIX}tva:{user_id}", 0, nx=True, ex=900)
        base = {"role": role, "amr": ["pwd"], "sid": session_id, "iat_ms": now_ms()}
        return create_access_token(identity=user_id, additional_claims={**base, **claims})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Platform:
    """A gateway on a real socket with nginx in front, as deployed."""

    def __init__(self, app: Flask, gateway: LiveServer, nginx: Nginx) -> None:
        self.app = app
        self.gateway = gateway
        self.nginx = nginx
        self.http = httpx.Client(base_url=nginx.url, timeout=10)

    def token(self, user_id: str = "u-1", role: str = "user") -> dict[str, str]:
        return bearer(mint_access_token(self.app, user_id, role))

    def close(self) -> None:
        self.http.close()
        self.nginx.stop()
        self.gateway.stop()


def start_platform(settings: GatewaySettings) -> Platform:
    app = create_app(settings)
    gateway = LiveServer(app).start()
    nginx = Nginx(gateway=f"127.0.0.1:{gateway.port}").start()
    return Platform(app, gateway, nginx)


@pytest.fixture(scope="session")
def courses_platform(courses_server: LiveServer) -> Iterator[Platform]:
    """nginx → gateway → courses (MariaDB)."""
    platform = start_platform(gateway_settings(courses_url=courses_server.url))
    yield platform
    platform.close()
