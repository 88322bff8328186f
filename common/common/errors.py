"""The one error contract of the platform.

Every non-2xx answer of every service is
``{"message", "error", "details"?, "request_id"}``. Business code raises
:class:`ApiError` subclasses (plain exceptions, no Flask needed); the handlers
registered by :func:`register_error_handlers` turn them and everything else
into the envelope.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, current_app, has_request_context, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import RoutingException

from common.request_context import current_request_id

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error whose status, code and message are safe to show to the client."""

    status: int = 400
    code: str = "bad_request"
    message: str = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequest(ApiError):
    status, code, message = 400, "bad_request", "The request is invalid."


class Unauthorized(ApiError):
    status, code, message = 401, "unauthorized", "Authentication is required."


class Forbidden(ApiError):
    status, code, message = 403, "forbidden", "You are not allowed to do this."


class NotFound(ApiError):
    status, code, message = 404, "not_found", "The resource was not found."


class Conflict(ApiError):
    status, code, message = 409, "conflict", "The request conflicts with the current state."


class ServiceUnavailable(ApiError):
    status, code, message = 503, "service_unavailable", "A dependency is unavailable."


class UpstreamUnavailable(ServiceUnavailable):
    """Another platform service could not be reached (or answered 5xx): the gateway and
    the services calling each other give clients this one answer."""

    code, message = "upstream_unavailable", "A service is temporarily unavailable."


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors without the offending input, which may be a secret."""
    return [
        {"loc": [str(part) for part in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def error_body(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "error": code}
    if details is not None:
        body["details"] = details
    body["request_id"] = current_request_id()
    return body


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    response = jsonify(error_body(status, code, message, details))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _snake_case(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "error"


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _handle_api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


def _handle_validation_error(exc: ValidationError) -> Response:
    return error_response(
        400, "validation_error", "The request is invalid.", validation_details(exc)
    )


def _slash_rule_method_not_allowed(exc: HTTPException) -> HTTPException:
    """werkzeug loses the methods of a trailing-slash rule reached without its slash
    (``strict_slashes`` is off): ``PUT /api/course`` was a 404 though ``/api/course/``
    takes GET and POST. Matched again with the slash, it is the 405 with its Allow."""
    if (
        exc.code != 404
        or not has_request_context()
        or request.routing_exception is not exc
        or request.path.endswith("/")
    ):
        return exc
    adapter = current_app.create_url_adapter(request)
    if adapter is None:
        return exc
    try:
        adapter.match(request.path + "/", method=request.method)
    except MethodNotAllowed as not_allowed:
        return not_allowed
    except (HTTPException, RoutingException):
        return exc
    return exc


def _handle_http_exception(exc: HTTPException) -> Response:
    exc = _slash_rule_method_not_allowed(exc)
    status = exc.code or 500
    code = _HTTP_CODES.get(status) or _snake_case(exc.name)
    response = error_response(status, code, exc.description or exc.name)
    if status == 405 and exc.response is None:
        allowed = getattr(exc, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    if exc.response is not None and "Retry-After" in exc.response.headers:
        response.headers["Retry-After"] = exc.response.headers["Retry-After"]
    return response


def _handle_unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _handle_http_exception(exc)
    log.exception("unhandled_exception")
    return error_response(500, "internal_error", "An unexpected error occurred.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _handle_api_error)
    app.register_error_handler(ValidationError, _handle_validation_error)
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(Exception, _handle_unexpected)
