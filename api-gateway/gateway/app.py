from __future__ import annotations

import logging

from flask import Flask, Response
from redis.exceptions import RedisError
from werkzeug.middleware.proxy_fix import ProxyFix

from common.app import create_base_app
from common.errors import error_response
from gateway.container import Container
from gateway.http import auth, courses, enrolments, learning, users
from gateway.http.cors import init_cors
from gateway.jwt import init_jwt
from gateway.openapi import docs_blueprint
from gateway.ratelimit import init_rate_limits
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


def create_app(settings: GatewaySettings | None = None) -> Flask:
    settings = settings or GatewaySettings()
    container = Container(settings=settings)
    app = create_base_app("gateway", settings, {}, require_internal_key=False)
    app.extensions["container"] = container
    # Exactly one trusted hop (nginx): a client-written X-Forwarded-For never picks the address.
    # X-Forwarded-Host is the Host the client sent, port included (the platform's own origin).
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    init_cors(app, settings)
    init_jwt(app, settings)
    app.register_blueprint(auth.blueprint)
    app.register_blueprint(users.blueprint)
    app.register_blueprint(courses.blueprint)
    app.register_blueprint(enrolments.blueprint)
    app.register_blueprint(learning.blueprint)
    app.register_blueprint(docs_blueprint())
    init_shared_state(app, settings)
    # Build the pooled clients now: creating one loads CA certificates (~100 ms), which
    # must not land on a user's first request.
    for upstream in (
        container.users,
        container.courses,
        container.enrolments,
        container.learning,
    ):
        upstream()
    return app


def init_shared_state(app: Flask, settings: GatewaySettings) -> None:
    """Redis-backed state and rate limits; after the blueprints (limits wrap their views)."""
    if not settings.redis_url:
        log.warning(
            "in_process_store",
            extra={
                "detail": "REDIS_URL is not set: sessions and rate limits live in this process "
                "only; run a single worker (development only)"
            },
        )
    init_rate_limits(app, settings)

    @app.errorhandler(RedisError)
    def store_unavailable(exc: RedisError) -> Response:
        # Fail closed: no login, refresh, MFA or token check without the shared store.
        log.warning("store_unavailable", extra={"error": type(exc).__name__})
        return error_response(
            503, "service_unavailable", "A dependency is temporarily unavailable."
        )
