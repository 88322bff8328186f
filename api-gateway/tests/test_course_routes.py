"""Course routes through nginx → gateway → courses (MariaDB), over real sockets."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from flask import Flask

from devtools.devservers import free_port
from devtools.live import LiveServer
from gateway.testing import Platform, gateway_settings, start_platform

pytestmark = pytest.mark.usefixtures("courses_db")


def course(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Gateway Course",
        "price": "99.90",
        "start_date": "2031-03-01T10:00:00Z",
        "end_date": "2031-04-01T10:00:00Z",
    }
    body.update(overrides)
    return body


def create(platform: Platform, **overrides: Any) -> dict[str, Any]:
    response = platform.http.post(
        "/api/course", json=course(**overrides), headers=platform.token("a-1", "admin")
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_admin_creates_and_anyone_reads(courses_platform: Platform):
    created = create(courses_platform)
    public = courses_platform.http.get(f"/api/course/{created['id']}")
    assert public.status_code == 200
    assert public.json() == created
    by_name = courses_platform.http.get("/api/course/", params={"name": "gateway course"})
    assert [c["id"] for c in by_name.json()["courses"]] == [created["id"]]
    exact = courses_platform.http.get("/api/course/", params={"exact_name": "gateway course"})
    assert exact.json()["id"] == created["id"]
    catalogue = courses_platform.http.get("/api/course/", params={"per_page": 5}).json()
    assert (catalogue["total"], catalogue["page"], catalogue["per_page"]) == (1, 1, 5)
    assert catalogue["courses"] == [created]


def test_update_and_delete_through_the_gateway(courses_platform: Platform):
    created = create(courses_platform)
    admin = courses_platform.token("a-1", "admin")
    path = f"/api/course/{created['id']}"
    patched = courses_platform.http.patch(path, json={"price": "120.00"}, headers=admin)
    assert (patched.status_code, patched.json()["price"]) == (200, "120.00")
    assert courses_platform.http.delete(path, headers=admin).status_code == 204
    missing = courses_platform.http.get(path)
    assert (missing.status_code, missing.json()["error"]) == (404, "course_not_found")


def test_duplicate_and_concurrent_duplicate_names(courses_platform: Platform):
    create(courses_platform, name="Only Once")
    again = courses_platform.http.post(
        "/api/course", json=course(name="ONLY ONCE"), headers=courses_platform.token("a", "admin")
    )
    assert (again.status_code, again.json()["error"]) == (409, "course_name_taken")

    statuses: list[int] = []
    barrier = threading.Barrier(2)
    admin = courses_platform.token("a", "admin")

    def race() -> None:
        barrier.wait()
        response = courses_platform.http.post(
            "/api/course", json=course(name="Race Course"), headers=admin
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (course(end_date="2031-02-01T00:00:00Z"), 400, "validation_error"),
        (course(price="-5"), 400, "validation_error"),
        (course(price=True), 400, "validation_error"),
    ],
)
def test_invalid_bodies(courses_platform: Platform, body, status, error):
    response = courses_platform.http.post(
        "/api/course", json=body, headers=courses_platform.token("a", "admin")
    )
    assert (response.status_code, response.json()["error"]) == (status, error)
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


def test_protocol_errors_keep_the_envelope(courses_platform: Platform):
    admin = courses_platform.token("a", "admin")
    malformed = courses_platform.http.post(
        "/api/course", content=b"{nope", headers={**admin, "Content-Type": "application/json"}
    )
    assert (malformed.status_code, malformed.json()["error"]) == (400, "malformed_json")
    wrong_method = courses_platform.http.put("/api/course/1", json={}, headers=admin)
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")
    huge = courses_platform.http.get("/api/course/", params={"per_page": 1000})
    assert (huge.status_code, huge.json()["error"]) == (400, "validation_error")
    too_big = courses_platform.http.post(
        "/api/course", content=b"x" * (2 * 1024 * 1024), headers=admin
    )
    assert (too_big.status_code, too_big.json()["error"]) == (413, "payload_too_large")
    nowhere = courses_platform.http.get("/not-api")
    assert (nowhere.status_code, nowhere.json()["error"]) == (404, "not_found")


def test_writes_need_a_token_and_the_admin_role(courses_platform: Platform):
    anonymous = courses_platform.http.post("/api/course", json=course())
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")
    user = courses_platform.http.post(
        "/api/course", json=course(), headers=courses_platform.token("u", "user")
    )
    assert (user.status_code, user.json()["error"]) == (403, "forbidden")


def test_updates_and_deletes_need_a_token_and_the_admin_role(courses_platform: Platform):
    created = create(courses_platform)
    path = f"/api/course/{created['id']}"
    user = courses_platform.token("u", "user")
    for method in ("PATCH", "DELETE"):
        body = {"price": "1.00"} if method == "PATCH" else None
        anonymous = courses_platform.http.request(method, path, json=body)
        assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized"), method
        denied = courses_platform.http.request(method, path, json=body, headers=user)
        assert (denied.status_code, denied.json()["error"]) == (403, "forbidden"), method
    assert courses_platform.http.get(path).json() == created


def test_client_identity_headers_are_ignored(courses_platform: Platform):
    """A user who claims to be admin in a header is still a user."""
    spoofed = {**courses_platform.token("u", "user"), "X-User-Id": "1", "X-User-Role": "admin"}
    response = courses_platform.http.post("/api/course", json=course(), headers=spoofed)
    assert response.status_code == 403
    forged = {"X-User-Id": "1", "X-User-Role": "admin", "X-Internal-Key": "guess"}
    assert (
        courses_platform.http.post("/api/course", json=course(), headers=forged).status_code == 401
    )


@pytest.mark.parametrize(
    "token",
    ["not-a-jwt", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwicm9sZSI6ImFkbWluIn0."],
)
def test_bad_tokens_are_401(courses_platform: Platform, token: str):
    response = courses_platform.http.post(
        "/api/course", json=course(), headers={"Authorization": f"Bearer {token}"}
    )
    assert (response.status_code, response.json()["error"]) == (401, "unauthorized")


def test_nginx_sets_the_request_id_and_hides_its_version(courses_platform: Platform):
    response = courses_platform.http.get("/api/course/", headers={"X-Request-ID": "client-pick"})
    assert response.headers["X-Request-ID"] != "client-pick"
    assert len(response.headers["X-Request-ID"]) == 32
    assert response.headers.get("Server") == "nginx"


def test_courses_service_down_is_503():
    platform = start_platform(gateway_settings(courses_url=f"http://127.0.0.1:{free_port()}"))
    try:
        response = platform.http.get("/api/course/1")
        assert (response.status_code, response.json()["error"]) == (503, "upstream_unavailable")
    finally:
        platform.close()


def test_slow_courses_service_is_503_within_the_upstream_timeout(
    caplog: pytest.LogCaptureFixture,
):
    release = threading.Event()
    slow = Flask("slow_courses")

    @slow.get("/courses/<int:course_id>")
    def hang(course_id: int) -> dict[str, Any]:
        release.wait(2)
        return {"id": course_id}

    server = LiveServer(slow).start()
    platform = start_platform(gateway_settings(courses_url=server.url, upstream_timeout=0.3))
    try:
        started = time.monotonic()
        with caplog.at_level(logging.INFO):
            response = platform.http.get("/api/course/1")
        assert time.monotonic() - started < 1.5
        assert response.status_code == 503
        body = response.json()
        assert set(body) == {"message", "error", "request_id"}
        assert (body["error"], body["request_id"]) == (
            "upstream_unavailable",
            response.headers["X-Request-ID"],
        )
        assert "Traceback" not in response.text
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    finally:
        release.set()
        platform.close()
        server.stop()
