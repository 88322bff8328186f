"""The instructor role through nginx → gateway → the services: a user's rights plus
authoring courses, never an admin's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from devtools.devservers import Redis
from devtools.live import LiveServer
from enrolments.testing import FakeUsers, create_course
from gateway.testing import Platform, bearer, gateway_settings, start_platform
from users.testing import PASSWORD, create_active_user


def course(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Instructor Course",
        "price": "25.00",
        "start_date": "2031-03-01T10:00:00Z",
        "end_date": "2031-04-01T10:00:00Z",
    }
    body.update(overrides)
    return body


# -- courses -------------------------------------------------------------------------------


@pytest.mark.usefixtures("courses_db")
def test_an_instructor_authors_a_draft_that_only_they_and_admins_see(courses_platform: Platform):
    http = courses_platform.http
    anna = courses_platform.token("anna", "instructor")
    admin = courses_platform.token("a-1", "admin")
    created = http.post("/api/course", json=course(), headers=anna)
    assert created.status_code == 201, created.text
    draft = created.json()
    assert (draft["author_id"], draft["status"]) == ("anna", "draft")
    path = f"/api/course/{draft['id']}"
    assert http.get(path).status_code == 404
    assert http.get(path, headers=courses_platform.token("boris", "instructor")).status_code == 404
    assert http.get(path, headers=anna).json() == draft
    assert http.get(path, headers=admin).json() == draft
    assert http.get("/api/course/").json()["total"] == 0

    published = http.patch(path, json={"status": "published"}, headers=anna)
    assert (published.status_code, published.json()["status"]) == (200, "published")
    assert [c["id"] for c in http.get("/api/course/").json()["courses"]] == [draft["id"]]


@pytest.mark.usefixtures("courses_db")
def test_only_the_author_or_an_admin_changes_a_course(courses_platform: Platform):
    http = courses_platform.http
    anna = courses_platform.token("anna", "instructor")
    boris = courses_platform.token("boris", "instructor")
    mine = http.post("/api/course", json=course(status="published"), headers=anna).json()
    path = f"/api/course/{mine['id']}"
    for method in ("PATCH", "DELETE"):
        body = {"price": "1.00"} if method == "PATCH" else None
        refused = http.request(method, path, json=body, headers=boris)
        assert (refused.status_code, refused.json()["error"]) == (403, "not_course_author")
        user = http.request(method, path, json=body, headers=courses_platform.token("u", "user"))
        assert (user.status_code, user.json()["error"]) == (403, "forbidden")
    patched = http.patch(path, json={"price": "30.00"}, headers=anna)
    assert (patched.status_code, patched.json()["price"]) == (200, "30.00")
    admin = courses_platform.token("a-1", "admin")
    assert http.patch(path, json={"price": "31.00"}, headers=admin).status_code == 200
    assert http.delete(path, headers=anna).status_code == 204


@pytest.mark.usefixtures("courses_db")
def test_an_authors_courses_through_the_gateway(courses_platform: Platform):
    http = courses_platform.http
    anna = courses_platform.token("anna", "instructor")
    shown = http.post(
        "/api/course", json=course(name="Shown", status="published"), headers=anna
    ).json()
    draft = http.post("/api/course", json=course(name="Hidden"), headers=anna).json()
    public = http.get("/api/course/author/anna")
    assert public.status_code == 200
    assert public.json() == {"courses": [shown], "page": 1, "per_page": 20, "total": 1}
    own = http.get("/api/course/author/anna", params={"per_page": 5}, headers=anna).json()
    assert ({c["id"] for c in own["courses"]}, own["per_page"]) == ({shown["id"], draft["id"]}, 5)
    admin = courses_platform.token("a-1", "admin")
    assert http.get("/api/course/author/anna", headers=admin).json()["total"] == 2
    other = courses_platform.token("boris", "instructor")
    assert http.get("/api/course/author/anna", headers=other).json()["total"] == 1
    odd = http.get("/api/course/author/a%25b%20c")  # escapes reach the service intact
    assert (odd.status_code, odd.json()["total"]) == (200, 0)
    bad = http.get("/api/course/author/anna", params={"per_page": 500})
    assert (bad.status_code, bad.json()["error"]) == (400, "validation_error")


# -- users ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def users_gateway(redis_server: Redis, users_server: LiveServer) -> Iterator[Platform]:
    url = redis_server.url.rsplit("/", 1)[0] + "/10"
    platform = start_platform(
        gateway_settings(
            users_url=users_server.url,
            redis_url=url,
            cookie_secure=False,
            auth_rate_limit="1000/minute",
        )
    )
    yield platform
    platform.close()


def login(gw: Platform, name: str) -> dict[str, str]:
    response = gw.http.post("/api/auth/login", json={"identifier": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    gw.http.cookies.clear()
    return bearer(response.json()["access_token"])


def test_an_admin_makes_an_instructor_who_cannot_change_roles(
    users_gateway: Platform, users_app: Flask, users_db: None
):
    http = users_gateway.http
    for name, role in (("root", "admin"), ("alice", "user"), ("bob", "user")):
        create_active_user(
            users_app, username=name, email=f"{name}@example.com", password=PASSWORD, role=role
        )
    admin, alice = login(users_gateway, "root"), login(users_gateway, "alice")
    alice_id = http.get("/api/users/me", headers=alice).json()["id"]
    promoted = http.patch(f"/api/users/{alice_id}/role", json={"role": "instructor"}, headers=admin)
    assert (promoted.status_code, promoted.json()["role"]) == (200, "instructor")
    assert http.get("/api/users/me", headers=alice).status_code == 401  # sessions ended
    instructor = login(users_gateway, "alice")
    assert http.get("/api/users/me", headers=instructor).json()["role"] == "instructor"
    bob_id = http.get("/api/users/identifier", params={"identifier": "bob"}, headers=admin).json()[
        "id"
    ]
    for target, role in ((bob_id, "instructor"), (alice_id, "admin")):
        refused = http.patch(f"/api/users/{target}/role", json={"role": role}, headers=instructor)
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert http.get("/api/users", headers=instructor).status_code == 403
    bob = http.get("/api/users/id", params={"user_id": bob_id}, headers=admin).json()
    assert bob["role"] == "user"


# -- enrolments ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def enrolments_gateway(enrolments_app: Flask, redis_server: Redis) -> Iterator[Platform]:
    server = LiveServer(enrolments_app).start()
    platform = start_platform(
        gateway_settings(enrolments_url=server.url, redis_url=redis_server.url)
    )
    yield platform
    platform.close()
    server.stop()


@pytest.mark.usefixtures("enrolments_db")
def test_an_instructor_enrols_like_a_user_and_not_like_an_admin(
    enrolments_gateway: Platform, fake_users: FakeUsers, courses_app: Flask
):
    fake_users.add("teach")
    fake_users.add("pupil")
    target = create_course(courses_app)
    http = enrolments_gateway.http
    instructor = enrolments_gateway.token("teach", "instructor")
    for_other = http.post(
        "/api/enrolment", json={"course_id": target["id"], "user_id": "pupil"}, headers=instructor
    )
    assert (for_other.status_code, for_other.json()["error"]) == (403, "forbidden")
    own = http.post("/api/enrolment", json={"course_id": target["id"]}, headers=instructor)
    assert (own.status_code, own.json()["user_id"]) == (201, "teach")
    assert http.get("/api/enrolment/mine", headers=instructor).json()["total"] == 1
    for method, path in [
        ("GET", f"/api/enrolment/{own.json()['id']}"),
        ("GET", "/api/enrolment/active"),
        ("PATCH", "/api/enrolment/expired"),
        ("DELETE", f"/api/enrolment/{own.json()['id']}"),
    ]:
        assert http.request(method, path, headers=instructor).status_code == 403, path
