"""Turning request bodies and query strings into pydantic models."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from flask import request
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
)

from common.errors import ApiError

M = TypeVar("M", bound=BaseModel)


def _representable_in_utc(value: datetime) -> datetime:
    # 0001-01-01T00:00+01:00 and 9999-12-31T23:59-05:00 are valid ISO 8601, but
    # ``astimezone(UTC)`` (what every SQL column needs, see common.timeutil.to_db)
    # overflows on them; refuse them here so storage code can never 500.
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the moment is out of range once converted to UTC") from None
    return value


_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_8601_only(value: object) -> object:
    # pydantic takes a number, or a string holding one, as a Unix timestamp:
    # ``starts_before=0.5`` would mean 1970. The API speaks ISO 8601 only.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _NUMBER.fullmatch(value):
        raise ValueError("use an ISO 8601 date and time with a UTC offset")
    return value


UtcDatetime = Annotated[
    AwareDatetime, BeforeValidator(_iso_8601_only), AfterValidator(_representable_in_utc)
]
"""A timezone-aware ISO 8601 datetime that can be converted to UTC: use it for every API
datetime."""


def _whole_number(value: object) -> object:
    # JSON has one number type: 3.0 is the integer 3, for JSON Schema too (an API client
    # in JavaScript cannot even tell them apart). A string or a boolean stays refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = BeforeValidator(_whole_number)
"""After a ``StrictInt`` and its constraints (``Annotated[StrictInt, Field(ge=1), WholeNumber]``):
an integer as JSON has it, ``3`` or ``3.0``, never ``"3"``, ``true`` or ``3.5``."""


class Schema(BaseModel):
    """Base for request models: unknown fields are refused, strings trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class QuerySchema(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def json_body() -> Any:
    """The request body as JSON, or a 415/400 envelope error."""
    if not request.is_json:
        raise ApiError(
            "The request body must be JSON (Content-Type: application/json).",
            code="unsupported_media_type",
            status=415,
        )
    raw = request.get_data(cache=True)
    try:
        return json.loads(raw)
    # RecursionError: a body nested deeper than the interpreter's limit ("[[[[...") is
    # client input like any other malformed JSON, not a server fault.
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError("The request body is not valid JSON.", code="malformed_json") from None


def parse_body(model: type[M]) -> M:
    data = json_body()
    if not isinstance(data, dict):
        raise ApiError("The request body must be a JSON object.", code="malformed_json")
    return model.model_validate(data)


def parse_query(model: type[M]) -> M:
    args = request.args
    data: dict[str, Any] = {}
    for key in args:
        values = args.getlist(key)
        data[key] = values[0] if len(values) == 1 else values
    return model.model_validate(data)
