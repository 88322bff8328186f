"""OpenAPI 3.1 for the public API, generated from the routes themselves.

Each public route carries an :func:`documented` record naming the same pydantic
models it validates with; the spec is assembled from Flask's URL map and those
models at start-up, so it cannot drift from what the code accepts. A test
asserts that every ``/api`` route is documented, and the schemathesis suite
(``tests/contract``) holds the running platform to the spec.

What a request model accepts is published as exactly as JSON Schema can say it
(:class:`RequestJsonSchema`): decimals with their bounds and places, no ``null``
where the model refuses one, no ``null`` in a query string, and a string that
must keep a character once trimmed. What a schema cannot say (a password policy,
a code that is well formed but unknown) is a status the operation documents with
``valid_request_errors``: those responses carry ``x-valid-request: true``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

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
class Link:
    """An OpenAPI link from a success answer to another operation, named by its method
    and path as the spec shows it (``"GET /api/course/{course_id}"``); values are runtime
    expressions such as ``"$response.body#/id"``."""

    target: str
    parameters: dict[str, str] = field(default_factory=dict)
    body: Any = None


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
    # Statuses a request that matches the schema may still get, and why (a rule no
    # schema can state: a password policy, a code that is well formed but unknown).
    valid_request_errors: dict[int, str] = field(default_factory=dict)
    # Links from the success answers, by name.
    links: dict[str, Link] = field(default_factory=dict)
    # What differs for one method of a multi-method route: {"POST": {"body": ...}}.
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_method(self, method: str) -> Operation:
        overrides = self.methods.get(method)
        return replace(self, methods={}, **overrides) if overrides else self


def documented(summary: str, *, tag: str, **details: Any) -> Callable[[F], F]:
    """Attach the OpenAPI description of a route to its view function."""
    operation = Operation(summary=summary, tag=tag, **details)
    for overrides in operation.methods.values():
        if "methods" in overrides:
            raise ValueError("per-method overrides do not nest")

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
    414: "Request URI too long (a path or query value too long for the proxy)",
    415: "Body is not of a media type the route accepts",
    422: "Well formed, but not what the current state allows",
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
            yield rule.rule, method, operation.for_method(method) if operation else None


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
    _resolve_links(paths)
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


def _resolve_links(paths: dict[str, dict[str, Any]]) -> None:
    """Name each link's target by its operationId; an unknown target is a mistake."""
    ids = {
        f"{method.upper()} {path}": spec["operationId"]
        for path, methods in paths.items()
        for method, spec in methods.items()
    }
    for methods in paths.values():
        for spec in methods.values():
            for response in spec["responses"].values():
                for name, link in response.get("links", {}).items():
                    target = link.pop("x-target")
                    if target not in ids:
                        raise ValueError(f"link {name!r} names no operation: {target}")
                    link["operationId"] = ids[target]


class RequestJsonSchema(GenerateJsonSchema):
    """JSON Schema for what a request model accepts, closer to pydantic's rules than the
    default: a decimal is a number of its places and bounds, or a string spelling one."""

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        if self.mode != "validation":
            return super().decimal_schema(schema)
        return decimal_request_schema(schema)


def decimal_request_schema(schema: core_schema.DecimalSchema) -> dict[str, Any]:
    """A bounded decimal with a fixed number of places, as a JSON number or string.

    The string form is the plain notation (no exponent): an optional ``+``, digits and
    up to ``decimal_places`` of them after the point (trailing zeros do not count, as
    pydantic normalises them away). The exponent notation pydantic also reads ("1e2") is
    left out: a generator following the spec would mostly send numbers out of bounds with
    it, and no client needs it. Supported bounds, the ones the contracts use: a
    lower bound of 0 (``ge`` or ``gt``) and an upper bound that is a power of ten.
    """
    places, digits = schema.get("decimal_places"), schema.get("max_digits")
    ge, gt, le = schema.get("ge"), schema.get("gt"), schema.get("le")
    if places is None or digits is None or schema.get("lt") is not None:
        raise NotImplementedError(f"document this decimal first: {schema}")
    if (ge, gt) not in ((0, None), (None, 0)):
        raise NotImplementedError(f"a decimal's lower bound is 0 here: {schema}")
    integer_digits = digits - places
    number: dict[str, Any] = {"type": "number", "multipleOf": float(Decimal(1).scaleb(-places))}
    if ge is not None:
        number["minimum"] = 0
    else:
        number["exclusiveMinimum"] = 0
    largest = Decimal(10) ** integer_digits - Decimal(1).scaleb(-places)
    top = ""
    if le is not None:
        power = len(str(int(le))) - 1
        if Decimal(le) != Decimal(10) ** power:
            raise NotImplementedError(f"a decimal's upper bound is a power of ten here: {schema}")
        if Decimal(le) <= largest:
            largest, integer_digits = Decimal(le), power
            top = rf"|0*{int(le)}(?:\.0*)?"
    number["maximum"] = float(largest)
    fraction = rf"(?:\.[0-9]{{0,{places}}}0*)?"
    if ge is not None:
        body = rf"0*[0-9]{{1,{integer_digits}}}{fraction}|0*\.[0-9]{{1,{places}}}0*"
    else:
        body = (
            rf"0*[1-9][0-9]{{0,{integer_digits - 1}}}{fraction}"
            rf"|0*\.[0-9]{{0,{places - 1}}}[1-9]0*"
        )
    string = {"type": "string", "pattern": rf"^\+?(?:{body}{top})$"}
    return {"anyOf": [number, string]}


def _component_schemas(operations: list[tuple[str, str, Operation]]) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (ErrorEnvelope, "serialization")
    ]
    request_models: list[type[BaseModel]] = []
    form_models: set[type[BaseModel]] = set()
    for _, _, operation in operations:
        for request_model in (operation.body, operation.form):
            if request_model is not None:
                models.append((request_model, "validation"))
                request_models.append(request_model)
        if operation.form is not None:
            form_models.add(operation.form)
        for model in operation.responses.values():
            if model is not None:
                models.append((model, "serialization"))
    unique = list(dict.fromkeys(models))
    _, schema = models_json_schema(
        unique, ref_template="#/components/schemas/{model}", schema_generator=RequestJsonSchema
    )
    components = dict(schema.get("$defs", {}))
    for model in _with_nested_models(request_models):
        # pydantic names a model used both ways "<name>-Input" in the request.
        name = model.__name__ if model.__name__ in components else f"{model.__name__}-Input"
        # A form field, like a query parameter, is text: it cannot be a null.
        _tighten_request_schema(model, components[name], query=model in form_models)
    return components


def _with_nested_models(models: Iterable[type[BaseModel]]) -> list[type[BaseModel]]:
    """The models and every model their fields hold (``list[AnswerIn]``, ``OptionIn | None``)."""
    found: dict[type[BaseModel], None] = {}
    pending = list(models)
    while pending:
        model = pending.pop()
        if model in found:
            continue
        found[model] = None
        for info in model.model_fields.values():
            types = [info.annotation]
            while types:
                kind = types.pop()
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    pending.append(kind)
                else:
                    types.extend(get_args(kind))
    return list(found)


# Unicode White_Space, what pydantic trims; and a character it keeps (anything else).
# ECMA-262's \s (a JSON Schema validator's) adds \ufeff and lacks \x85; Python's (the
# generator's) adds \x1c-\x1f and \x85. Spelled out, the classes mean the same to both.
_WHITE_SPACE = r"[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_KEPT = r"(?:[^\s\x85]|[\x1c-\x1f\ufeff])"


def _tighten_request_schema(model: type[BaseModel], schema: dict[str, Any], *, query: bool) -> None:
    """What the model accepts, where pydantic's own schema says more.

    - ``null`` only where the model takes it: a field may be optional (leave it out)
      without being nullable, which a model says with a validator, found here by trying.
      A query string or a form cannot carry a null at all.
    - strings are trimmed before their length is checked (``Schema`` strips them): the
      lengths are those of the trimmed text, which only a pattern can say.
    """
    for name, prop in schema.get("properties", {}).items():
        options = prop.get("anyOf")
        nullable = options and any(option.get("type") == "null" for option in options)
        if nullable and (query or not _accepts_null(model, name)):
            options = [option for option in options if option.get("type") != "null"]
            prop.pop("default", None)
            if len(options) == 1:
                del prop["anyOf"]
                prop.update(options[0])
            else:
                prop["anyOf"] = options
        if model.model_config.get("str_strip_whitespace") and not _keeps_whitespace(model, name):
            for option in prop.get("anyOf", [prop]):
                _trimmed_lengths(option.get("items", option))


def _keeps_whitespace(model: type[BaseModel], name: str) -> bool:
    """A field that opts out of the model's trimming (``strip_whitespace=False``)."""
    pending: list[Any] = [model.model_fields[name].annotation, *model.model_fields[name].metadata]
    while pending:
        item = pending.pop()
        if getattr(item, "strip_whitespace", None) is False:
            return True
        pending.extend(getattr(item, "__metadata__", ()))
        pending.extend(get_args(item))
    return False


def _trimmed_lengths(schema: dict[str, Any]) -> None:
    """``minLength``/``maxLength`` of the trimmed text, as a pattern over the text sent."""
    if schema.get("type") != "string" or {"pattern", "format", "enum", "const"} & set(schema):
        return
    low, high = schema.pop("minLength", 0), schema.pop("maxLength", None)
    if not low and high is None:
        return
    core = [""] if low == 0 else []
    if low <= 1 and (high is None or high >= 1):
        core.append(_KEPT)
    if high is None or high >= 2:
        upper = "" if high is None else high - 2
        core.append(rf"{_KEPT}[\s\S]{{{max(low, 2) - 2},{upper}}}{_KEPT}")
    schema["pattern"] = rf"^{_WHITE_SPACE}*(?:{'|'.join(core)}){_WHITE_SPACE}*$"
    span = f"{low} to {high}" if high is not None else f"at least {low}"
    note = f"{span} characters once trimmed of white space"
    schema["description"] = f"{schema['description']} ({note})" if "description" in schema else note


def _accepts_null(model: type[BaseModel], name: str) -> bool:
    try:
        model.model_validate({name: None})
    except ValidationError as exc:
        # Missing required fields say nothing about this one; anything else is a refusal.
        return all(error["type"] == "missing" for error in exc.errors())
    return True


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


def _link(link: Link) -> dict[str, Any]:
    spec: dict[str, Any] = {"x-target": link.target}
    if link.parameters:
        spec["parameters"] = dict(link.parameters)
    if link.body is not None:
        spec["requestBody"] = link.body
    return spec


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
        if 200 <= status < 300 and operation.links:
            response["links"] = {name: _link(link) for name, link in operation.links.items()}
        spec["responses"][str(status)] = response
    errors = set(operation.errors) | set(_AUTH_ERRORS[operation.auth]) | {500, 503}
    errors |= set(operation.valid_request_errors)
    if bodies:
        errors |= {400, 413, 415}
    if operation.query is not None:
        errors.add(400)
    if parameters or operation.query is not None:
        # A value long enough makes the request line longer than nginx takes.
        errors.add(414)
    if operation.rate_limited or operation.account_limited:
        errors.add(429)
    for status in sorted(errors):
        error: dict[str, Any] = {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": _ref(ErrorEnvelope)}},
        }
        if status in operation.valid_request_errors:
            error["description"] += "; also when the request matches the schema: "
            error["description"] += operation.valid_request_errors[status]
            error["x-valid-request"] = True
        spec["responses"][str(status)] = error
    return spec


def _query_parameters(model: type[BaseModel] | None) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(schema_generator=RequestJsonSchema)
    _tighten_request_schema(model, schema, query=True)
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
