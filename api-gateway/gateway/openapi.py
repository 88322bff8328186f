"""OpenAPI 3.1 for the public API, generated from the routes themselves.

Each public route carries an :func:`documented` record naming the same pydantic
models it validates with; the spec is assembled from Flask's URL map and those
models at start-up, so it cannot drift from what the code accepts. A test
asserts that every ``/api`` route is documented.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

F = TypeVar("F", bound=Callable[..., Any])
Auth = Literal["public", "optional", "user", "instructor", "admin", "mfa_token", "refresh_cookie"]
DOC_ATTRIBUTE = "__openapi__"


class ErrorDetail(BaseModel):
    loc: list[str]
    msg: str
    type: str


class ErrorEnvelope(BaseModel):
    """Every non-2xx answer of the platform."""

    message: str
    error: str
    details: list[ErrorDetail] | None = None
    request_id: str


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    auth: Auth = "public"
    body: type[BaseModel] | None = None
    # A multipart/form-data alternative to the JSON body (an upload); ``bytes`` fields
    # are file parts. Only ``form`` means a multipart-only route.
    form: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    # Statuses whose answer may be a file (any media type, its own Content-Type); its
    # model, if any, describes the JSON answer of the same status.
    files: tuple[int, ...] = ()
    errors: tuple[int, ...] = ()
    example: dict[str, Any] | None = None
    rate_limited: bool = False  # per client IP (AUTH_RATE_LIMIT)
    account_limited: bool = False  # per caller's user id (ACCOUNT_RATE_LIMIT)


def documented(summary: str, *, tag: str, **details: Any) -> Callable[[F], F]:
    """Attach the OpenAPI description of a route to its view function."""
    operation = Operation(summary=summary, tag=tag, **details)

    def attach(fn: F) -> F:
        setattr(fn, DOC_ATTRIBUTE, operation)
        return fn

    return attach


_ERROR_TEXT = {
    400: "Invalid request (validation_error, malformed_json)",
    401: "Missing, invalid or revoked credentials",
    403: "Authenticated but not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflicts with the current state",
    413: "Request body too large",
    415: "Body is not of a media type the route accepts",
    429: "Rate limited (see Retry-After)",
    500: "Unexpected error",
    503: "A dependency is unavailable",
}
_AUTH_ERRORS: dict[str, tuple[int, ...]] = {
    "public": (),
    "optional": (401,),
    "user": (401,),
    "instructor": (401, 403),
    "admin": (401, 403),
    "mfa_token": (401,),
    "refresh_cookie": (401,),
}
_PATH_PARAM = re.compile(r"<(?:(?P<converter>[a-z]+):)?(?P<name>\w+)>")


def documented_rules(app: Flask) -> Iterable[tuple[str, str, Operation | None]]:
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule.startswith(("/api/docs", "/api/openapi")):
            continue
        view = app.view_functions[rule.endpoint]
        operation = getattr(view, DOC_ATTRIBUTE, None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule.rule, method, operation


def build_spec(
    app: Flask, title: str = "Course Platform API", version: str = "1.0"
) -> dict[str, Any]:
    operations = [(path, method, op) for path, method, op in documented_rules(app) if op]
    components = _component_schemas(operations)
    paths: dict[str, dict[str, Any]] = {}
    for rule, method, operation in operations:
        path, parameters = _openapi_path(rule)
        paths.setdefault(path, {})[method.lower()] = _operation(
            operation, parameters, f"{method.lower()}_{path}"
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "refreshCookie": {"type": "apiKey", "in": "cookie", "name": "refresh_token"},
            },
        },
    }


def _component_schemas(operations: list[tuple[str, str, Operation]]) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (ErrorEnvelope, "serialization")
    ]
    for _, _, operation in operations:
        for request_model in (operation.body, operation.form):
            if request_model is not None:
                models.append((request_model, "validation"))
        for model in operation.responses.values():
            if model is not None:
                models.append((model, "serialization"))
    unique = list(dict.fromkeys(models))
    _, schema = models_json_schema(unique, ref_template="#/components/schemas/{model}")
    return dict(schema.get("$defs", {}))


def _openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    parameters = []
    for match in _PATH_PARAM.finditer(rule):
        kind = "integer" if match.group("converter") == "int" else "string"
        parameters.append(
            {"name": match.group("name"), "in": "path", "required": True, "schema": {"type": kind}}
        )
    path = _PATH_PARAM.sub(lambda m: "{" + m.group("name") + "}", rule)
    if len(path) > 1:
        path = path.rstrip("/")
    return path, parameters


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(
    operation: Operation, parameters: list[dict[str, Any]], op_id: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "summary": operation.summary,
        "tags": [operation.tag],
        "operationId": re.sub(r"[^a-zA-Z0-9]+", "_", op_id).strip("_"),
        "parameters": parameters + _query_parameters(operation.query),
        "responses": {},
    }
    if operation.auth in ("user", "instructor", "admin"):
        spec["security"] = [{"bearerAuth": []}]
        roles = "instructor or admin" if operation.auth == "instructor" else operation.auth
        spec["description"] = f"Requires a bearer access token ({roles} role)."
    elif operation.auth == "optional":
        spec["security"] = [{}, {"bearerAuth": []}]
    elif operation.auth == "refresh_cookie":
        spec["security"] = [{"refreshCookie": []}]
        spec["description"] = "Needs the refresh cookie and the X-CSRF-TOKEN header."
    bodies: dict[str, Any] = {}
    if operation.body is not None:
        content: dict[str, Any] = {"schema": _ref(operation.body)}
        if operation.example is not None:
            content["example"] = operation.example
        bodies["application/json"] = content
    if operation.form is not None:
        bodies["multipart/form-data"] = {"schema": _ref(operation.form)}
    if bodies:
        spec["requestBody"] = {"required": True, "content": bodies}
    for status, model in (operation.responses or {200: None}).items():
        response: dict[str, Any] = {"description": "Success"}
        content_types: dict[str, Any] = {}
        if model is not None:
            content_types["application/json"] = {"schema": _ref(model)}
        if status in operation.files:
            content_types["*/*"] = {"schema": {"type": "string", "format": "binary"}}
        if content_types:
            response["content"] = content_types
        spec["responses"][str(status)] = response
    errors = set(operation.errors) | set(_AUTH_ERRORS[operation.auth]) | {500, 503}
    if bodies:
        errors |= {400, 413, 415}
    if operation.query is not None:
        errors.add(400)
    if operation.rate_limited or operation.account_limited:
        errors.add(429)
    for status in sorted(errors):
        spec["responses"][str(status)] = {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": _ref(ErrorEnvelope)}},
        }
    return spec


def _query_parameters(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


def _swagger_assets() -> Path:
    package = resources.files("flask_openapi3_swagger") / "templates" / "swagger"
    return Path(str(package))


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Course Platform API</title>
<link rel="stylesheet" href="/api/docs/assets/css/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/assets/js/swagger-ui-bundle.js"></script>
<script src="/api/docs/assets/js/swagger-ui-standalone-preset.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#swagger-ui",
presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "BaseLayout"});
</script></body></html>"""


def docs_blueprint() -> Blueprint:
    blueprint = Blueprint("docs", __name__)

    @blueprint.get("/api/openapi.json")
    def openapi_json() -> Response:
        spec = current_app.extensions.get("openapi_spec")
        if spec is None:
            spec = current_app.extensions["openapi_spec"] = build_spec(current_app)
        return jsonify(spec)

    @blueprint.get("/api/docs")
    def swagger_ui() -> Response:
        return Response(_DOCS_PAGE, mimetype="text/html")

    @blueprint.get("/api/docs/assets/<path:filename>")
    def swagger_assets(filename: str) -> Response:
        return send_from_directory(_swagger_assets(), filename, max_age=86400)

    return blueprint
