"""The OpenAPI spec covers every public route, its examples validate, and the
docs page works offline. That the running platform keeps the spec (schemathesis, every
check, through nginx, anonymous and as an admin) is tests/contract/test_schemathesis.py,
which replaced the in-process fuzz test that was here."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from flask import Flask

from devtools.devservers import Redis
from devtools.live import LiveServer
from gateway import create_app
from gateway.openapi import DOC_ATTRIBUTE, build_spec, documented_rules
from gateway.testing import gateway_settings


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
