from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from common.app import create_base_app
from gateway.container import Container
from gateway.http import courses, enrolments
from gateway.jwt import init_jwt
from gateway.openapi import docs_blueprint
from gateway.settings import GatewaySettings


def create_app(settings: GatewaySettings | None = None) -> Flask:
    settings = settings or GatewaySettings()
    container = Container(settings=settings)
    app = create_base_app("gateway", settings, {}, require_internal_key=False)
    app.extensions["container"] = container
    # Exactly one trusted hop (nginx): a client-written X-Forwarded-For never picks the address.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    init_jwt(app, settings)
    app.register_blueprint(courses.blueprint)
    app.register_blueprint(enrolments.blueprint)
    app.register_blueprint(docs_blueprint())
    return app
