"""The OpenAPI spec covers every public route, its examples validate, and the
docs page works offline; schemathesis finds no 5xx and no off-spec answer."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from devtools.devservers import Redis
from devtools.live import LiveServer
from gateway import create_app
from gateway.openapi import DOC_ATTRIBUTE, build_spec, documented_rules
from gateway.testing import bearer, gateway_settings, mint_access_token
from users.testing import create_active_user


@pytest.fixture(scope="module")
def docs_app(redis_server: Redis) -> Flask:
    return create_app(gateway_settings(redis_url=redis_server.url))


def test_every_public_route_is_documented(docs_app: Flask):
    undocumented = [f"{m} {p}" for p, m, op in documented_rules(docs_app) if op is None]
    assert undocumented == []
    spec = build_spec(docs_app)
    operations = sum(len(methods) for methods in spec["paths"].values())
    assert operations == len(list(documented_rules(docs_app)))
    assert {"/api/auth/login", "/api/users", "/api/course", "/api/enrolment/paid"} <= set(
        spec["paths"]
    )


def test_internal_paths_are_not_in_the_spec(docs_app: Flask):
    assert not [path for path in build_spec(docs_app)["paths"] if "internal" in path]


def test_every_operation_documents_auth_body_and_error_envelope(docs_app: Flask):
    spec = build_spec(docs_app)
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            assert operation["summary"], where
            errors = [code for code in operation["responses"] if code.startswith(("4", "5"))]
            assert errors, where
            for code in errors:
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, where
            if operation.get("security") and {} not in operation["security"]:
                assert "401" in operation["responses"], where


def test_documented_examples_validate_against_their_models(docs_app: Flask):
    checked = 0
    for rule in docs_app.url_map.iter_rules():
        operation = getattr(docs_app.view_functions[rule.endpoint], DOC_ATTRIBUTE, None)
        if operation is not None and operation.example is not None:
            assert operation.body is not None, rule.rule
            operation.body.model_validate(operation.example)
            checked += 1
    assert checked >= 3


def test_swagger_ui_is_served_offline(docs_app: Flask):
    client = docs_app.test_client()
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/api/openapi.json" in html
    assert "http" not in html.replace("/api/", "")  # no CDN: every asset is ours
    for asset in ("js/swagger-ui-bundle.js", "css/swagger-ui.css"):
        assert client.get(f"/api/docs/assets/{asset}").status_code == 200
    assert client.get("/api/openapi.json").get_json()["openapi"] == "3.1.0"


# Chromium as root in a sandbox-less VM with a closed network: no sandbox, and none of
# the background connections it would otherwise try (and be refused) at start-up.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_RENDERED_OPERATION = re.compile(r'class="opblock opblock-(\w+)[^"]*".*?data-path="([^"]+)"', re.S)


def test_swagger_ui_renders_every_operation_in_a_headless_browser(docs_app: Flask, tmp_path: Path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "scripts/install-system.sh installs Debian's chromium"
    server = LiveServer(docs_app).start()
    try:
        rendered = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp_path}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"{server.url}/api/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    finally:
        server.stop()
    spec = build_spec(docs_app)
    documented = {(m, p) for p, methods in spec["paths"].items() for m in methods}
    assert set(_RENDERED_OPERATION.findall(rendered)) == documented


@pytest.fixture(scope="module")
def fuzz_app(
    redis_server: Redis,
    courses_server: LiveServer,
    users_server: LiveServer,
    enrolments_app: Flask,
    learning_app: Flask,
) -> Iterator[Flask]:
    enrolments = LiveServer(enrolments_app).start()
    learning = LiveServer(learning_app).start()
    app = create_app(
        gateway_settings(
            redis_url=redis_server.url,
            courses_url=courses_server.url,
            users_url=users_server.url,
            enrolments_url=enrolments.url,
            learning_url=learning.url,
            auth_rate_limit="100000/minute",
            account_rate_limit="100000/minute",
        )
    )
    yield app
    learning.stop()
    enrolments.stop()


FUZZ_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_fuzzing_finds_no_server_error_and_no_off_spec_answer(
    fuzz_app: Flask, users_app: Flask, users_db: None
):
    """A bounded, deterministic schemathesis run over every operation."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app)
    admin_id = create_active_user(
        users_app,
        username="fuzz-admin",
        email="fuzz-admin@example.org",
        password="fuzzing admin passphrase 1",
        role="admin",
    )["id"]
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            # A fresh session per case: the fuzzer also calls logout and session revocation.
            admin = bearer(mint_access_token(fuzz_app, admin_id, "admin"))
            case.call_and_validate(headers=admin, checks=FUZZ_CHECKS)

        try:
            exercise()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collect them all
            failures.append(f"{operation.label}: {str(exc)[:600]}")
    assert operations >= 30
    assert failures == [], "\n\n".join(failures)  # noqa: E501


def test_postman_collection_has_every_operation(docs_app: Flask):
    from gateway.postman import postman_collection

    spec = build_spec(docs_app)
    collection = postman_collection(spec, "http://127.0.0.1:8080")
    requests = [item["request"] for folder in collection["item"] for item in folder["item"]]
    expected = {(m.upper(), p) for p, methods in spec["paths"].items() for m in methods}
    exported = {
        (r["method"], "/" + "/".join(r["url"]["path"]).replace("{{", "{").replace("}}", "}"))
        for r in requests
    }
    assert exported == expected
    login = next(r for r in requests if r["url"]["path"] == ["api", "auth", "login"])
    assert "auth" not in login
    create = next(
        r for r in requests if r["method"] == "POST" and r["url"]["path"] == ["api", "course"]
    )
    assert create["auth"]["type"] == "bearer"
    assert '"price": "199.99"' in create["body"]["raw"]


def test_patch_course_documents_null_only_where_null_is_valid():
    from contracts.courses import CourseUpdate

    properties = CourseUpdate.model_json_schema()["properties"]
    nullable = {
        name
        for name, prop in properties.items()
        if any(option.get("type") == "null" for option in prop.get("anyOf", []))
    }
    assert nullable == {"description", "max_participants"}
