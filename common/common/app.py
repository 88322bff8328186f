"""The base Flask application every service is built on."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Mapping

from flask import Flask, Response, request
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from common.errors import error_response, register_error_handlers
from common.health import Check, health_blueprint
from common.http import INTERNAL_KEY_HEADER
from common.logging import configure_logging
from common.request_context import REQUEST_ID_HEADER, current_request_id, set_request_id
from common.settings import BaseServiceSettings

access_log = logging.getLogger("access")

MAX_BODY_BYTES = 1024 * 1024
MAX_ROW_ID = 2**63 - 1


class RowIdConverter(IntegerConverter):
    """``<int:…>`` for row ids: a number beyond a signed 64-bit column names no row,
    so it is a 404 for every method, instead of a driver overflow (a 500 on SQLite)."""

    def to_python(self, value: str) -> int:
        number = int(super().to_python(value))
        if number > MAX_ROW_ID:
            # Raised, not a ValidationError: that would make werkzeug try the other
            # rules and answer 405 for methods only they allow.
            raise NotFound()
        return number


def create_base_app(
    name: str,
    settings: BaseServiceSettings,
    checks: Mapping[str, Check],
    *,
    require_internal_key: bool = True,
) -> Flask:
    """A Flask app with the error envelope, request ids, health and, for the
    internal services, the check that every call comes from the gateway."""
    configure_logging(name, settings.log_level)
    app = Flask(name, static_folder=None)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.compact = True  # type: ignore[attr-defined]
    app.url_map.strict_slashes = False
    app.url_map.converters["int"] = RowIdConverter
    register_error_handlers(app)
    _install_request_id(app)
    if require_internal_key and settings.internal_api_key.get_secret_value():
        _install_internal_key_check(app, settings.internal_api_key.get_secret_value())
    app.register_blueprint(health_blueprint(checks))
    return app


def _install_request_id(app: Flask) -> None:
    @app.before_request
    def adopt_request_id() -> None:
        set_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.environ["platform.started"] = time.perf_counter()

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = current_request_id()
        if access_log.isEnabledFor(logging.DEBUG):
            started = request.environ.get("platform.started", time.perf_counter())
            access_log.debug(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
        return response


def _install_internal_key_check(app: Flask, key: str) -> None:
    expected = key.encode()

    @app.before_request
    def only_from_gateway() -> Response | None:
        if request.path.startswith("/health"):
            return None
        presented = request.headers.get(INTERNAL_KEY_HEADER, "").encode()
        if not hmac.compare_digest(presented, expected):
            return error_response(401, "unauthorized", "Internal endpoint.")
        return None
