"""The shared chassis: settings, envelope, request ids, health, HTTP client, outbox."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from flask import Flask, jsonify, request
from pydantic import SecretStr, ValidationError
from sqlalchemy import text

from common.app import create_base_app
from common.db import Database
from common.errors import Conflict
from common.http import INTERNAL_KEY_HEADER, ServiceClient
from common.logging import JsonFormatter
from common.outbox import Claimed, OutboxRelay, PermanentFailure, backoff_delay
from common.request_context import REQUEST_ID_HEADER, set_request_id
from common.settings import BaseServiceSettings
from common.validation import Schema, parse_body
from devtools.devservers import free_port
from devtools.helpers import TEST_INTERNAL_KEY
from devtools.live import LiveServer
from gateway.settings import GatewaySettings
from users.settings import UsersSettings


class Item(Schema):
    name: str


def make_app(checks=None) -> Flask:
    settings = BaseServiceSettings(environment="test", internal_api_key=TEST_INTERNAL_KEY)
    app = create_base_app("demo", settings, checks or {})

    @app.post("/items")
    def create_item():
        item = parse_body(Item)
        if item.name == "taken":
            raise Conflict("Name taken.", code="name_taken")
        if item.name == "boom":
            raise RuntimeError("secret internals: password=hunter2")
        return jsonify(name=item.name), 201

    @app.route("/items/<int:item_id>", methods=["GET", "DELETE"])
    def get_item(item_id: int):
        return jsonify(id=item_id)

    @app.get("/echo-id")
    def echo_id():
        return jsonify(seen=request.headers.get(REQUEST_ID_HEADER))

    return app


KEY = {INTERNAL_KEY_HEADER: TEST_INTERNAL_KEY}


@pytest.mark.parametrize("secret", ["", "change-me-please-change-me-please-123", "short-but-real"])
def test_settings_refuse_missing_placeholder_or_short_secrets(secret: str):
    with pytest.raises(ValidationError, match="INTERNAL_API_KEY"):
        BaseServiceSettings(environment="production", internal_api_key=SecretStr(secret))
    assert BaseServiceSettings(environment="development", internal_api_key=secret)


def test_unexpected_exception_is_a_500_without_internals(caplog):
    response = make_app().test_client().post("/items", json={"name": "boom"}, headers=KEY)
    assert response.status_code == 500
    body = response.get_json()
    assert body["error"] == "internal_error"
    assert "hunter2" not in response.get_data(as_text=True)
    assert any("unhandled_exception" in record.getMessage() for record in caplog.records)


def test_api_errors_and_validation_errors_use_the_envelope():
    client = make_app().test_client()
    conflict = client.post("/items", json={"name": "taken"}, headers=KEY)
    assert conflict.status_code == 409
    assert conflict.get_json() == {
        "message": "Name taken.",
        "error": "name_taken",
        "request_id": conflict.headers[REQUEST_ID_HEADER],
    }
    invalid = client.post("/items", json={"name": 5, "extra": 1}, headers=KEY)
    assert invalid.status_code == 400
    assert {tuple(d["loc"]) for d in invalid.get_json()["details"]} == {("name",), ("extra",)}
    not_object = client.post("/items", json=[1], headers=KEY)
    assert (not_object.status_code, not_object.get_json()["error"]) == (400, "malformed_json")


@pytest.mark.parametrize(
    ("path", "status"),
    [("/items/9223372036854775807", 200), ("/items/9223372036854775808", 404), ("/items/0", 200)],
)
def test_path_ids_beyond_a_64_bit_column_name_no_row(path: str, status: int):
    response = make_app().test_client().get(path, headers=KEY)
    assert response.status_code == status
    if status == 404:
        assert response.get_json()["error"] == "not_found"
        # Not a 405: no route would take another method at that path either.
        assert make_app().test_client().delete(path, headers=KEY).status_code == 404


def test_deeply_nested_json_is_a_400_not_a_500():
    # json.loads raises RecursionError (not ValueError) past ~1000 levels; a 1 MB body
    # of brackets would otherwise crash the request before validation.
    deep = (
        make_app()
        .test_client()
        .post("/items", data="[" * 5000 + "]" * 5000, content_type="application/json", headers=KEY)
    )
    assert (deep.status_code, deep.get_json()["error"]) == (400, "malformed_json")


def test_request_id_is_adopted_when_well_formed_else_minted():
    client = make_app().test_client()
    kept = client.get("/echo-id", headers={**KEY, REQUEST_ID_HEADER: "abc-123"})
    assert kept.headers[REQUEST_ID_HEADER] == "abc-123"
    replaced = client.get("/echo-id", headers={**KEY, REQUEST_ID_HEADER: "bad id <script>"})
    assert replaced.headers[REQUEST_ID_HEADER] != "bad id <script>"
    assert len(replaced.headers[REQUEST_ID_HEADER]) == 32


def test_readiness_names_the_failing_check():
    def broken() -> None:
        raise ConnectionError("db down")

    client = make_app({"database": broken, "cache": lambda: None}).test_client()
    ready = client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.get_json()["checks"] == {"database": "fail", "cache": "ok"}
    assert client.get("/health/live").status_code == 200


class KeepAliveEcho(BaseHTTPRequestHandler):
    """An HTTP/1.1 keep-alive server (werkzeug's closes every connection) that
    echoes what a client sent and counts the connections it accepted."""

    protocol_version = "HTTP/1.1"
    connections: list[int] = []

    def setup(self) -> None:
        super().setup()
        self.connections.append(self.client_address[1])

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        body = json.dumps(
            {
                "path": self.path,
                "seen": self.headers.get(REQUEST_ID_HEADER),
                "key": self.headers.get(INTERNAL_KEY_HEADER),
                "cookie": self.headers.get("Cookie"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        # Were the client to keep cookies, the next caller would send this one.
        self.send_header("Set-Cookie", "session=first-callers")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_service_client_sends_request_id_and_key_over_one_pool_and_keeps_no_cookies():
    KeepAliveEcho.connections = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAliveEcho)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with ServiceClient(url, internal_key=TEST_INTERNAL_KEY) as client:
            set_request_id("trace-42")
            answers = [client.get("/echo", params={"page": n}).json() for n in range(3)]
        assert [a["path"] for a in answers] == ["/echo?page=0", "/echo?page=1", "/echo?page=2"]
        assert {a["seen"] for a in answers} == {"trace-42"}
        assert {a["key"] for a in answers} == {TEST_INTERNAL_KEY}
        assert {a["cookie"] for a in answers} == {None}
        assert len(KeepAliveEcho.connections) == 1, "one pooled connection for three calls"
    finally:
        server.shutdown()
        server.server_close()


def test_service_client_sends_no_key_when_it_has_none():
    server = LiveServer(make_app()).start()
    try:
        with ServiceClient(server.url) as anonymous:
            assert anonymous.get("/echo-id").status_code == 401
    finally:
        server.stop()


def test_service_client_reports_an_unreachable_service_as_a_transport_error():
    client = ServiceClient(f"http://127.0.0.1:{free_port()}", connect_timeout=0.5)
    with client, pytest.raises(httpx.TransportError):
        client.get("/anything")


class MemoryOutbox:
    def __init__(self, payloads: list[str]) -> None:
        self.items = {str(i): [p, 0, "due"] for i, p in enumerate(payloads)}
        self.lock = threading.Lock()

    def claim_due(self, limit: int) -> Sequence[Claimed[str]]:
        with self.lock:
            due = [(k, v) for k, v in self.items.items() if v[2] == "due"][:limit]
            for _, value in due:
                value[1] += 1
                value[2] = "claimed"
            return [Claimed(k, v[1], v[0]) for k, v in due]

    def mark_done(self, item_id: str) -> None:
        self.items[item_id][2] = "done"

    def mark_retry(self, item_id: str, delay_seconds: float, error: str) -> None:
        self.items[item_id][2] = "due"

    def mark_failed(self, item_id: str, error: str) -> None:
        self.items[item_id][2] = "failed"


def test_outbox_relay_retries_until_delivered_and_stops_on_permanent_failure():
    store = MemoryOutbox(["flaky", "ok", "refused"])
    failures = {"flaky": 2}
    delivered: list[str] = []

    def handler(payload: str) -> None:
        if payload == "refused":
            raise PermanentFailure("remote said no")
        if failures.get(payload, 0) > 0:
            failures[payload] -= 1
            raise ConnectionError("smtp down")
        delivered.append(payload)

    relay = OutboxRelay("test", store, handler, backoff_base=0.0)
    for _ in range(5):
        relay.drain_once()
    assert sorted(delivered) == ["flaky", "ok"]
    assert store.items["0"][1] == 3
    assert store.items["2"][2] == "failed"


def test_backoff_grows_and_is_capped():
    assert all(0 <= backoff_delay(1, base=1) <= 1 for _ in range(50))
    assert max(backoff_delay(6, base=1) for _ in range(200)) > 16
    assert all(backoff_delay(30, base=1, cap=60) <= 60 for _ in range(50))


def test_third_party_secrets_skip_only_the_length_rule():
    from typing import ClassVar

    class WithVendorToken(BaseServiceSettings):
        third_party_secrets: ClassVar[frozenset[str]] = frozenset({"vendor_token"})
        vendor_token: SecretStr = SecretStr("")

    key = "k" * 40
    assert WithVendorToken(environment="production", internal_api_key=key, vendor_token="short1")
    with pytest.raises(ValidationError, match="VENDOR_TOKEN"):
        WithVendorToken(environment="production", internal_api_key=key, vendor_token="")
    with pytest.raises(ValidationError, match="INTERNAL_API_KEY"):
        WithVendorToken(environment="production", internal_api_key="short", vendor_token="short1")


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize(
    ("settings_class", "secret", "others"),
    [
        (GatewaySettings, "jwt_secret_key", {"redis_url": "redis://127.0.0.1:1/0"}),
        (UsersSettings, "totp_encryption_key", {}),
    ],
)
def test_a_service_secret_one_byte_short_is_refused_outside_development(
    environment, settings_class, secret, others
):
    values = {"environment": environment, "internal_api_key": "i" * 40, **others}
    with pytest.raises(ValidationError, match=secret.upper()):
        settings_class(**values, **{secret: "k" * 31})
    assert settings_class(**values, **{secret: "k" * 32})
    assert settings_class(**{**values, "environment": "development"}, **{secret: "k" * 31})


def test_database_down_is_a_503_without_driver_or_sql_text():
    port = free_port()  # nothing listens there: the connection is refused
    database = Database(f"mysql+pymysql://root:hunter2@127.0.0.1:{port}/shop")
    app = make_app()

    @app.get("/rows")
    def rows():
        with database.transaction() as session:
            session.execute(text("SELECT secret_column FROM accounts"))
        return jsonify(ok=True)

    try:
        response = app.test_client().get("/rows", headers=KEY)
    finally:
        database.dispose()
    assert (response.status_code, response.get_json()["error"]) == (503, "database_unavailable")
    body = response.get_data(as_text=True)
    for internal in ("pymysql", "OperationalError", "2003", "SELECT", "secret_column", "hunter2"):
        assert internal not in body
    assert str(port) not in body


def test_json_log_lines_carry_the_request_id_extras_and_the_traceback():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("demo"))
    logger = logging.getLogger("test_chassis.json")
    logger.addHandler(handler)
    logger.propagate = False
    set_request_id("trace-77")
    try:
        logger.warning("invoice_retry", extra={"enrolment": 7})
        try:
            raise ValueError("kaput")
        except ValueError:
            logger.exception("unhandled_exception")
    finally:
        logger.removeHandler(handler)
    plain, failed = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (plain["event"], plain["request_id"], plain["enrolment"]) == (
        "invoice_retry",
        "trace-77",
        7,
    )
    assert (plain["service"], plain["level"]) == ("demo", "warning")
    assert "traceback" not in plain
    assert (failed["event"], failed["request_id"], failed["level"]) == (
        "unhandled_exception",
        "trace-77",
        "error",
    )
    assert failed["traceback"].startswith("Traceback (most recent call last)")
    assert 'raise ValueError("kaput")' in failed["traceback"]
    assert failed["traceback"].endswith("ValueError: kaput")
