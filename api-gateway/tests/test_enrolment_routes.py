"""Enrolment routes through nginx → gateway → enrolments (MariaDB) → courses, users stand-in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from devtools.devservers import Redis
from devtools.live import LiveServer
from enrolments.testing import FakeUsers, create_course
from gateway.testing import Platform, gateway_settings, start_platform

pytestmark = pytest.mark.usefixtures("enrolments_db")


@pytest.fixture(scope="module")
def enrolments_platform(enrolments_app: Flask, redis_server: Redis) -> Iterator[Platform]:
    server = LiveServer(enrolments_app).start()
    platform = start_platform(
        gateway_settings(enrolments_url=server.url, redis_url=redis_server.url)
    )
    yield platform
    platform.close()
    server.stop()


def test_enrol_pay_and_read_through_the_gateway(
    enrolments_platform: Platform, fake_users: FakeUsers, sandbox, courses_app: Flask
):
    fake_users.add("42")
    course = create_course(courses_app, price="199.99")
    user = enrolments_platform.token("42", "user")
    created = enrolments_platform.http.post(
        "/api/enrolment", json={"course_id": course["id"]}, headers=user
    )
    assert created.status_code == 201, created.text
    enrolment = created.json()
    assert (enrolment["user_id"], enrolment["price"]) == ("42", "199.99")
    again = enrolments_platform.http.post(
        "/api/enrolment", json={"course_id": course["id"]}, headers=user
    )
    assert (again.status_code, again.json()["error"]) == (409, "already_enrolled")

    paid = enrolments_platform.http.patch(
        "/api/enrolment/paid", json={"enrolment_id": enrolment["id"]}, headers=user
    )
    assert (paid.status_code, paid.json()["invoice_status"]) == (200, "pending")
    details = enrolments_platform.http.get(
        f"/api/enrolment/{enrolment['id']}/details", headers=user
    )
    assert details.json()["payment_status"] == "paid"
    mine = enrolments_platform.http.get("/api/enrolment/mine", headers=user).json()
    assert mine["total"] == 1
    admin = enrolments_platform.token("1", "admin")
    by_admin = enrolments_platform.http.get(f"/api/enrolment/{enrolment['id']}", headers=admin)
    assert by_admin.json()["id"] == enrolment["id"]


def test_guards_and_validation_at_the_gateway(enrolments_platform: Platform):
    anonymous = enrolments_platform.http.post("/api/enrolment", json={"course_id": 1})
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")
    user = enrolments_platform.token("7", "user")
    for method, path in [
        ("GET", "/api/enrolment/1"),
        ("GET", "/api/enrolment/active"),
        ("PATCH", "/api/enrolment/expired"),
        ("DELETE", "/api/enrolment/1"),
        ("POST", "/api/enrolment/1/invoice/retry"),
    ]:
        response = enrolments_platform.http.request(method, path, headers=user)
        assert response.status_code == 403, (method, path)
    invalid = enrolments_platform.http.post(
        "/api/enrolment", json={"course_id": "x", "role": "admin"}, headers=user
    )
    assert (invalid.status_code, invalid.json()["error"]) == (400, "validation_error")
    expired = enrolments_platform.http.patch(
        "/api/enrolment/expired", headers=enrolments_platform.token("1", "admin")
    )
    assert (expired.status_code, expired.json()["expired"]) == (200, 0)


def test_cancel_active_retry_and_delete_through_the_gateway(
    enrolments_platform: Platform, fake_users: FakeUsers, courses_app: Flask
):
    fake_users.add("42")
    course = create_course(courses_app)
    http = enrolments_platform.http
    user = enrolments_platform.token("42", "user")
    admin = enrolments_platform.token("1", "admin")
    first = http.post("/api/enrolment", json={"course_id": course["id"]}, headers=user).json()
    # Cancel acts as the token's user: another user's cancel finds nothing.
    stranger = http.post(
        f"/api/enrolment/{first['id']}/cancel", headers=enrolments_platform.token("7", "user")
    )
    assert (stranger.status_code, stranger.json()["error"]) == (404, "enrolment_not_found")
    cancelled = http.post(f"/api/enrolment/{first['id']}/cancel", headers=user)
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    second = http.post("/api/enrolment", json={"course_id": course["id"]}, headers=user).json()
    active = http.get("/api/enrolment/active", params={"course_id": course["id"]}, headers=admin)
    assert active.status_code == 200, active.text
    assert [e["id"] for e in active.json()["enrolments"]] == [second["id"]]
    other = http.get("/api/enrolment/active", params={"course_id": course["id"] + 1}, headers=admin)
    assert other.json()["total"] == 0
    retry = http.post(f"/api/enrolment/{second['id']}/invoice/retry", headers=admin)
    assert (retry.status_code, retry.json()["error"]) == (409, "invoice_not_failed")
    deleted = http.delete(f"/api/enrolment/{first['id']}", headers=admin)
    assert (deleted.status_code, deleted.content) == (204, b"")
    gone = http.get(f"/api/enrolment/{first['id']}", headers=admin)
    assert (gone.status_code, gone.json()["error"]) == (404, "enrolment_not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/enrolment/1/cancel"),
        ("DELETE", "/api/enrolment/1"),
        ("GET", "/api/enrolment/active?course_id=1"),
        ("POST", "/api/enrolment/1/invoice/retry"),
    ],
)
def test_enrolment_routes_need_a_token(enrolments_platform: Platform, method: str, path: str):
    response = enrolments_platform.http.request(method, path)
    assert (response.status_code, response.json()["error"]) == (401, "unauthorized")
