"""The published schemas accept exactly what the models accept, and the spec declares the
links, statuses and bodies the schemathesis suite (tests/contract) holds the platform to."""

from __future__ import annotations

import random
import re
from typing import Annotated, Any

import jsonschema_rs
import pytest
from flask import Flask
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from contracts.courses import CourseListQuery, Price
from contracts.learning import LessonUpdate, Percent, Points
from contracts.users import SEARCH_PATTERN, UserListQuery
from devtools.devservers import Redis
from gateway import create_app
from gateway.openapi import (
    RequestJsonSchema,
    _query_parameters,
    _trimmed_lengths,
    build_spec,
)
from gateway.testing import gateway_settings


@pytest.fixture(scope="module")
def spec(redis_server: Redis) -> dict[str, Any]:
    app: Flask = create_app(gateway_settings(redis_url=redis_server.url))
    return build_spec(app)


def _operation(spec: dict[str, Any], label: str) -> dict[str, Any]:
    method, path = label.split(" ", 1)
    return spec["paths"][path][method.lower()]


def test_links_lead_from_the_creating_routes_to_existing_operations(spec):
    operation_ids = {
        operation["operationId"]: operation
        for methods in spec["paths"].values()
        for operation in methods.values()
    }
    targets: dict[str, set[str]] = {}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            for status, response in operation["responses"].items():
                for link in response.get("links", {}).values():
                    assert status.startswith("2"), (method, path, status)
                    target = operation_ids[link["operationId"]]
                    names = {p["name"] for p in target["parameters"]}
                    assert set(link.get("parameters", {})) <= names, link
                    targets.setdefault(f"{method.upper()} {path}", set()).add(link["operationId"])
    assert {
        "get_api_enrolment_enrolment_id",
        "get_api_enrolment_enrolment_id_details",
        "patch_api_enrolment_paid",
        "post_api_enrolment_enrolment_id_cancel",
        "delete_api_enrolment_enrolment_id",
    } <= targets["POST /api/enrolment"]
    assert {
        "get_api_course_course_id",
        "patch_api_course_course_id",
        "delete_api_course_course_id",
        "post_api_enrolment",
    } <= targets["POST /api/course"]
    assert {
        "get_api_users_id",
        "patch_api_users_user_id_role",
        "delete_api_users_id",
    } <= targets["POST /api/users"]


def test_a_status_a_valid_request_may_get_is_said_so(spec):
    activation = _operation(spec, "PATCH /api/users/activation")["responses"]["400"]
    assert activation["x-valid-request"] is True
    assert "unknown" in activation["description"]
    assert "x-valid-request" not in _operation(spec, "GET /api/course")["responses"]["400"]
    order = _operation(spec, "PUT /api/course/{course_id}/modules/order")["responses"]
    assert order["422"]["x-valid-request"] is True


def test_414_and_415_are_documented_where_they_can_happen(spec):
    for methods in spec["paths"].values():
        for operation in methods.values():
            where = operation["operationId"]
            if operation["parameters"]:
                assert "414" in operation["responses"], where
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= set(operation["responses"]), where
    resend = _operation(spec, "POST /api/users/activation/resend")
    assert resend["parameters"] == []
    assert "application/json" in resend["requestBody"]["content"]
    assert "415" in resend["responses"]
    assert _operation(spec, "GET /api/users/activation/resend")["parameters"][0]["required"]


def test_null_is_published_only_where_the_model_takes_it(spec):
    lesson = spec["components"]["schemas"]["LessonUpdate"]["properties"]
    assert "anyOf" not in lesson["title"]
    assert lesson["title"]["type"] == "string"
    assert {"type": "null"} in lesson["estimated_minutes"]["anyOf"]
    with pytest.raises(ValidationError):
        LessonUpdate.model_validate({"title": None})
    LessonUpdate.model_validate({"estimated_minutes": None})
    form = spec["components"]["schemas"]["MediaUpload"]["properties"]
    assert "anyOf" not in form["media_type"]  # a form field is text, never null
    for parameter in _query_parameters(CourseListQuery):
        assert "null" not in str(parameter["schema"]), parameter


def _strings(alphabet: str, count: int, longest: int) -> list[str]:
    rng = random.Random(15)
    return [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest))) for _ in range(count)
    ]


def _agrees(schema: dict[str, Any], accepts: Any, samples: list[Any]) -> None:
    validator = jsonschema_rs.validator_for(schema)
    for sample in samples:
        assert validator.is_valid(sample) == accepts(sample), (sample, schema)


@pytest.mark.parametrize("kind", [Price, Percent, Points])
def test_a_decimal_is_published_as_its_model_takes_it(kind):
    adapter = TypeAdapter(kind)
    schema = adapter.json_schema(schema_generator=RequestJsonSchema)

    def accepts(value: Any) -> bool:
        try:
            adapter.validate_python(value)
        except ValidationError:
            return False
        return True

    strings = ["0", "0.00", "1.5", "1.555", "1.550", "99", "100", "100.00", "100.01", "1000"]
    strings += ["1000.0", "1001", ".5", ".05", "00.01", "0.001", "1.", "+5", "99999999.99"]
    # Not "1e2": pydantic reads the exponent notation too, the spec publishes the plain one.
    strings += ["123456789", "-1", "", "abc"]
    numbers = [0, 0.5, 0.07, 1.25, 99.99, 100, 100.5, 1000, 1000.01, 5e8, -1]
    _agrees(schema, accepts, strings + numbers)


def test_a_trimmed_string_publishes_the_lengths_of_the_trimmed_text():
    class Trimmed(BaseModel):
        model_config = ConfigDict(str_strip_whitespace=True)
        value: Annotated[str, Field(min_length=2, max_length=5)]

    schema = Trimmed.model_json_schema()["properties"]["value"]
    _trimmed_lengths(schema)
    assert "maxLength" not in schema
    assert re.search(schema["pattern"], " ab ")

    def accepts(text: str) -> bool:
        try:
            Trimmed(value=text)
        except ValidationError:
            return False
        return True

    _agrees(schema, accepts, _strings("ab \t\x85\xa0\ufeff\x1c\u3000\n", 3000, 9))


def test_the_user_search_pattern_is_the_validator():
    schema = next(p for p in _query_parameters(UserListQuery) if p["name"] == "search")["schema"]
    assert schema["pattern"] == SEARCH_PATTERN

    def accepts(text: str) -> bool:
        try:
            UserListQuery.model_validate({"search": text})
        except ValidationError:
            return False
        return True

    alphabet = "a \t\x00\x1d\x7f\x85\x9f\xa0\ufeff\u2028"
    _agrees(schema, accepts, _strings(alphabet, 3000, 6) + ["a" * 64, "a" * 65, " " + "a" * 64])
