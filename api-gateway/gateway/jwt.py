"""flask-jwt-extended configured for the platform's tokens and error envelope."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask, Response
from flask_jwt_extended import JWTManager

from common.errors import error_response
from gateway.settings import GatewaySettings

DECODE_LEEWAY_SECONDS = 10


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
        JWT_REFRESH_COOKIE_NAME="__Secure-refresh_token" if secure else "refresh_token",
        JWT_REFRESH_CSRF_COOKIE_NAME="__Secure-csrf_refresh_token"
        if secure
        else "csrf_refresh_token",
        JWT_REFRESH_COOKIE_PATH="/api/auth",
        JWT_REFRESH_CSRF_COOKIE_PATH="/api/auth",
        JWT_SESSION_COOKIE=False,
        JWT_ERROR_MESSAGE_KEY="message",
    )
    manager = JWTManager(app)
    _install_error_envelope(manager)
    return manager


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
