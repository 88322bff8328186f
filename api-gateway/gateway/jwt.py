"""flask-jwt-extended configured for the platform's tokens and error envelope.

Access tokens carry ``sub``, ``role``, ``jti``, ``iat``, ``exp``, ``amr``, the
session id ``sid`` and ``iat_ms`` (issue time in milliseconds, compared with the
user's ``tokens_valid_after``). Refresh tokens carry ``sub``, ``sid``, ``jti``,
``iat_ms`` and the CSRF value of the double-submit cookie.

Every verified token, access or refresh, goes through :func:`token_revoked`, which
asks the shared store "blocklisted?", "session alive?" and "tokens_valid_after?".
With Redis the answers come from a local copy that Redis invalidates the moment a
key changes (:mod:`gateway.adapters.tracked`), so most requests make no round trip
and a revocation still counts from the next request. Only a miss of the last costs
a call to the users service, and its answer is cached for ``TVA_CACHE_SECONDS``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, current_app
from flask_jwt_extended import JWTManager, create_access_token, create_refresh_token

from common.errors import UpstreamUnavailable, error_response
from gateway.adapters.state import DELETED, GatewayState
from gateway.adapters.upstream import Upstream
from gateway.settings import GatewaySettings

DECODE_LEEWAY_SECONDS = 10


def refresh_cookie_name(secure: bool) -> str:
    return "__Secure-refresh_token" if secure else "refresh_token"


def csrf_cookie_name(secure: bool) -> str:
    return "__Secure-csrf_refresh_token" if secure else "csrf_refresh_token"


def init_jwt(app: Flask, settings: GatewaySettings) -> JWTManager:
    secure = settings.cookie_secure
    app.config.update(
        JWT_SECRET_KEY=settings.jwt_secret_key.get_secret_value(),
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_DECODE_LEEWAY=DECODE_LEEWAY_SECONDS,
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=settings.access_token_minutes),
        JWT_REFRESH_TOKEN_EXPIRES=timedelta(days=settings.refresh_token_absolute_days),
        JWT_TOKEN_LOCATION=["headers", "cookies"],
        JWT_COOKIE_SECURE=secure,
        JWT_COOKIE_SAMESITE="Strict",
        JWT_COOKIE_CSRF_PROTECT=True,
        JWT_CSRF_IN_COOKIES=True,
        JWT_CSRF_METHODS=["POST", "PUT", "PATCH", "DELETE"],
        JWT_REFRESH_COOKIE_NAME=refresh_cookie_name(secure),
        JWT_REFRESH_CSRF_COOKIE_NAME=csrf_cookie_name(secure),
        JWT_REFRESH_COOKIE_PATH="/api/auth",
        # The CSRF cookie is meant to be read by the front end's JavaScript, on any page.
        JWT_REFRESH_CSRF_COOKIE_PATH="/",
        JWT_SESSION_COOKIE=False,
        JWT_ERROR_MESSAGE_KEY="message",
    )
    manager = JWTManager(app)
    _install_error_envelope(manager)
    manager.token_in_blocklist_loader(token_revoked)
    return manager


def issue_access_token(
    user_id: str, role: str, amr: list[str], session_id: str, issued_ms: int
) -> str:
    claims = {"role": role, "amr": amr, "sid": session_id, "iat_ms": issued_ms}
    return create_access_token(identity=user_id, additional_claims=claims)


def new_jti() -> str:
    return uuid.uuid4().hex


def issue_refresh_token(
    user_id: str, session_id: str, jti: str, absolute_ms: int, issued_ms: int
) -> str:
    """Never outlives the family's absolute end."""
    lifetime = max(1, (absolute_ms - issued_ms) // 1000)
    claims = {"sid": session_id, "iat_ms": issued_ms, "jti": jti}
    return create_refresh_token(
        identity=user_id, additional_claims=claims, expires_delta=timedelta(seconds=lifetime)
    )


def fetch_tokens_valid_after(users: Upstream, user_id: str) -> int | str:
    response = users.call("GET", f"/internal/users/{quote(user_id, safe='')}")
    if response.status_code == 404:
        return DELETED
    if response.status_code != 200:
        raise UpstreamUnavailable()
    return int(response.json()["tokens_valid_after"])


def token_revoked(_header: dict[str, Any], payload: dict[str, Any]) -> bool:
    session_id = payload.get("sid")
    issued_ms = payload.get("iat_ms")
    if not isinstance(session_id, str) or not isinstance(issued_ms, int):
        return True
    container = current_app.extensions["container"]
    state: GatewayState = container.state()
    user_id = str(payload["sub"])
    status = state.token_status(str(payload["jti"]), user_id, session_id)
    if status.blocklisted or not status.session_alive:
        return True
    valid_after = status.tokens_valid_after
    if valid_after is None:
        valid_after = fetch_tokens_valid_after(container.users(), user_id)
        state.cache_tokens_valid_after(user_id, valid_after)
    return valid_after == DELETED or issued_ms < int(valid_after)


def _unauthorized(_reason: Any = None, *_args: Any) -> Response:
    # One neutral answer whatever was wrong with the token: missing, forged, expired, revoked.
    return error_response(401, "unauthorized", "Authentication is required.")


def _install_error_envelope(manager: JWTManager) -> None:
    manager.unauthorized_loader(_unauthorized)
    manager.invalid_token_loader(_unauthorized)
    manager.expired_token_loader(_unauthorized)
    manager.revoked_token_loader(_unauthorized)
    manager.needs_fresh_token_loader(_unauthorized)
    manager.user_lookup_error_loader(_unauthorized)
    manager.token_verification_failed_loader(_unauthorized)
