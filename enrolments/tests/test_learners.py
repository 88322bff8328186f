"""Course status at enrolment, and the internal endpoints of the learning service, against
real MariaDB and the real courses service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from devtools.helpers import internal_headers
from enrolments.testing import ADMIN, FakeUsers, create_course, enrol, pay, user_headers

pytestmark = pytest.mark.usefixtures("enrolments_db")

SERVICE = internal_headers()  # the learning service: the internal key, no caller


def set_status(courses_app: Flask, course_id: int, status: str) -> None:
    response = courses_app.test_client().patch(
        f"/courses/{course_id}", json={"status": status}, headers=internal_headers("1", "admin")
    )
    assert response.status_code == 200, response.get_json()


def access(client: FlaskClient, user_id: str, course_id: int) -> Any:
    return client.get(
        "/internal/enrolments/access",
        query_string={"user_id": user_id, "course_id": course_id},
        headers=SERVICE,
    )


def complete(client: FlaskClient, user_id: str, course_id: int) -> Any:
    return client.post(
        "/internal/enrolments/complete",
        json={"user_id": user_id, "course_id": course_id},
        headers=SERVICE,
    )


# -- course status at enrolment ------------------------------------------------------------


def test_a_draft_course_is_not_found_and_an_archived_one_takes_no_enrolment(
    enrolments_client: FlaskClient, fake_users: FakeUsers, courses_app: Flask
):
    fake_users.add("u1")
    draft = create_course(courses_app, status="draft")
    response = enrolments_client.post(
        "/enrolment", json={"course_id": draft["id"]}, headers=user_headers("u1")
    )
    assert (response.status_code, response.get_json()["error"]) == (404, "course_not_found")
    archived = create_course(courses_app, status="archived")
    response = enrolments_client.post(
        "/enrolment", json={"course_id": archived["id"]}, headers=user_headers("u1")
    )
    assert (response.status_code, response.get_json()["error"]) == (409, "course_archived")
    set_status(courses_app, draft["id"], "published")
    assert enrol(enrolments_client, "u1", draft["id"])["course_id"] == draft["id"]


def test_the_course_is_read_through_the_internal_route(
    enrolments_app: Flask, enrolments_client: FlaskClient, fake_users: FakeUsers, courses_app
):
    """The public route hides a draft; expiry must still follow its end date."""
    fake_users.add("u1")
    course = create_course(courses_app)
    enrolment = enrol(enrolments_client, "u1", course["id"])
    response = courses_app.test_client().patch(
        f"/courses/{course['id']}",
        json={
            "status": "draft",
            "start_date": datetime(2019, 12, 1, tzinfo=UTC).isoformat(),
            "end_date": datetime(2020, 1, 1, tzinfo=UTC).isoformat(),
        },
        headers=internal_headers("1", "admin"),
    )
    assert response.status_code == 200, response.get_json()
    fetched = enrolments_app.extensions["container"].courses().get(course["id"])
    assert (fetched.status, fetched.end_date) == ("draft", datetime(2020, 1, 1, tzinfo=UTC))
    report = enrolments_client.patch("/enrolment/expired", headers=ADMIN).get_json()
    assert report["enrolment_ids"] == [enrolment["id"]]


def test_an_instructor_enrols_themself_but_no_one_else(enrolments_client, fake_users, courses_app):
    fake_users.add("teacher")
    fake_users.add("u2")
    course = create_course(courses_app)
    instructor = internal_headers("teacher", "instructor")
    refused = enrolments_client.post(
        "/enrolment", json={"course_id": course["id"], "user_id": "u2"}, headers=instructor
    )
    assert (refused.status_code, refused.get_json()["error"]) == (403, "forbidden")
    own = enrolments_client.post("/enrolment", json={"course_id": course["id"]}, headers=instructor)
    assert (own.status_code, own.get_json()["user_id"]) == (201, "teacher")
    assert enrolments_client.get("/enrolment/active", headers=instructor).status_code == 403


# -- access --------------------------------------------------------------------------------


def test_access_needs_a_live_enrolment_and_may_learn_needs_payment_or_a_free_course(
    enrolments_client, fake_users, courses_app, sandbox
):
    fake_users.add("u1")
    paid_course = create_course(courses_app, price="199.99")
    free_course = create_course(courses_app, price="0.00")
    missing = access(enrolments_client, "u1", paid_course["id"])
    assert (missing.status_code, missing.get_json()["error"]) == (404, "enrolment_not_found")

    enrolment = enrol(enrolments_client, "u1", paid_course["id"])
    unpaid = access(enrolments_client, "u1", paid_course["id"])
    assert (unpaid.status_code, unpaid.get_json()) == (
        200,
        {
            "enrolment_id": enrolment["id"],
            "status": "active",
            "payment_status": "pending",
            "may_learn": False,
        },
    )
    pay(enrolments_client, "u1", enrolment["id"])
    paid = access(enrolments_client, "u1", paid_course["id"]).get_json()
    assert (paid["payment_status"], paid["may_learn"]) == ("paid", True)

    free = enrol(enrolments_client, "u1", free_course["id"])
    answer = access(enrolments_client, "u1", free_course["id"]).get_json()
    assert answer == {
        "enrolment_id": free["id"],
        "status": "active",
        "payment_status": "pending",
        "may_learn": True,
    }
    assert access(enrolments_client, "u2", free_course["id"]).status_code == 404


def test_a_cancelled_enrolment_gives_no_access(enrolments_client, fake_users, courses_app):
    fake_users.add("u1")
    course = create_course(courses_app)
    enrolment = enrol(enrolments_client, "u1", course["id"])
    enrolments_client.post(f"/enrolment/{enrolment['id']}/cancel", headers=user_headers("u1"))
    response = access(enrolments_client, "u1", course["id"])
    assert (response.status_code, response.get_json()["error"]) == (404, "enrolment_not_found")


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("access", {"user_id": "u1"}),
        ("access", {"course_id": 1}),
        ("access", {"user_id": "../x", "course_id": 1}),
        ("access", {"user_id": "u1", "course_id": 0}),
        ("learners", {}),
        ("learners", {"course_id": 1, "per_page": 101}),
        ("learners", {"course_id": "x"}),
        ("by-user", {}),
        ("by-user", {"user_id": "u1", "page": 0}),
        ("by-user", {"user_id": "u1", "extra": 1}),
    ],
)
def test_bad_internal_queries_are_400(enrolments_client, path, query):
    response = enrolments_client.get(
        f"/internal/enrolments/{path}", query_string=query, headers=SERVICE
    )
    assert (response.status_code, response.get_json()["error"]) == (400, "validation_error")


def test_the_internal_routes_need_the_internal_key(enrolments_client):
    for path in ("access?user_id=u1&course_id=1", "learners?course_id=1", "by-user?user_id=u1"):
        assert enrolments_client.get(f"/internal/enrolments/{path}").status_code == 401
    response = enrolments_client.post(
        "/internal/enrolments/complete", json={"user_id": "u1", "course_id": 1}
    )
    assert response.status_code == 401


# -- learners and a user's enrolments ------------------------------------------------------


def test_learners_are_the_live_enrolments_of_a_course_by_enrolment_id(
    enrolments_client, fake_users, courses_app
):
    course = create_course(courses_app)
    other = create_course(courses_app)
    for user in ("a", "b", "c", "d"):
        fake_users.add(user)
    ids = {user: enrol(enrolments_client, user, course["id"])["id"] for user in ("a", "b", "c")}
    enrol(enrolments_client, "d", other["id"])
    enrolments_client.post(f"/enrolment/{ids['b']}/cancel", headers=user_headers("b"))
    assert complete(enrolments_client, "c", course["id"]).status_code == 200
    pay(enrolments_client, "a", ids["a"])

    listing = enrolments_client.get(
        "/internal/enrolments/learners", query_string={"course_id": course["id"]}, headers=SERVICE
    ).get_json()
    assert listing == {
        "learners": [
            {
                "user_id": "a",
                "enrolment_id": ids["a"],
                "status": "active",
                "payment_status": "paid",
            },
            {
                "user_id": "c",
                "enrolment_id": ids["c"],
                "status": "completed",
                "payment_status": "pending",
            },
        ],
        "page": 1,
        "per_page": 20,
        "total": 2,
    }
    second = enrolments_client.get(
        "/internal/enrolments/learners",
        query_string={"course_id": course["id"], "page": 2, "per_page": 1},
        headers=SERVICE,
    ).get_json()
    assert ([r["user_id"] for r in second["learners"]], second["total"]) == (["c"], 2)
    nobody = enrolments_client.get(
        "/internal/enrolments/learners", query_string={"course_id": 999999}, headers=SERVICE
    ).get_json()
    assert (nobody["learners"], nobody["total"]) == ([], 0)


def test_by_user_lists_a_users_live_enrolments(enrolments_client, fake_users, courses_app):
    fake_users.add("u1")
    fake_users.add("u2")
    first, second, third = (create_course(courses_app) for _ in range(3))
    kept = enrol(enrolments_client, "u1", first["id"])
    dropped = enrol(enrolments_client, "u1", second["id"])
    finished = enrol(enrolments_client, "u1", third["id"])
    enrol(enrolments_client, "u2", first["id"])
    enrolments_client.post(f"/enrolment/{dropped['id']}/cancel", headers=user_headers("u1"))
    complete(enrolments_client, "u1", third["id"])

    listing = enrolments_client.get(
        "/internal/enrolments/by-user", query_string={"user_id": "u1"}, headers=SERVICE
    ).get_json()
    assert listing == {
        "enrolments": [
            {
                "course_id": first["id"],
                "enrolment_id": kept["id"],
                "status": "active",
                "payment_status": "pending",
            },
            {
                "course_id": third["id"],
                "enrolment_id": finished["id"],
                "status": "completed",
                "payment_status": "pending",
            },
        ],
        "page": 1,
        "per_page": 20,
        "total": 2,
    }
    paged = enrolments_client.get(
        "/internal/enrolments/by-user",
        query_string={"user_id": "u1", "per_page": 1},
        headers=SERVICE,
    ).get_json()
    assert ([e["enrolment_id"] for e in paged["enrolments"]], paged["total"]) == ([kept["id"]], 2)


# -- completion ----------------------------------------------------------------------------


def test_completion_is_idempotent_and_only_for_a_live_enrolment(
    enrolments_client, fake_users, courses_app
):
    fake_users.add("u1")
    course = create_course(courses_app)
    missing = complete(enrolments_client, "u1", course["id"])
    assert (missing.status_code, missing.get_json()["error"]) == (404, "enrolment_not_found")
    enrolment = enrol(enrolments_client, "u1", course["id"])
    first = complete(enrolments_client, "u1", course["id"])
    again = complete(enrolments_client, "u1", course["id"])
    expected = {"enrolment_id": enrolment["id"], "status": "completed"}
    assert (first.status_code, first.get_json()) == (200, expected)
    assert (again.status_code, again.get_json()) == (200, expected)
    stored = enrolments_client.get(f"/enrolment/{enrolment['id']}", headers=ADMIN).get_json()
    assert stored["status"] == "completed"
    # Still live: it keeps the pair, the seat and the access.
    assert enrol(enrolments_client, "u1", course["id"], expect=409)["error"] == "already_enrolled"
    assert access(enrolments_client, "u1", course["id"]).get_json()["status"] == "completed"
    refused = enrolments_client.post(
        f"/enrolment/{enrolment['id']}/cancel", headers=user_headers("u1")
    )
    assert (refused.status_code, refused.get_json()["error"]) == (409, "enrolment_not_active")


def test_a_cancelled_enrolment_cannot_be_completed(enrolments_client, fake_users, courses_app):
    fake_users.add("u1")
    course = create_course(courses_app)
    enrolment = enrol(enrolments_client, "u1", course["id"])
    enrolments_client.post(f"/enrolment/{enrolment['id']}/cancel", headers=user_headers("u1"))
    response = complete(enrolments_client, "u1", course["id"])
    assert (response.status_code, response.get_json()["error"]) == (404, "enrolment_not_found")
    stored = enrolments_client.get(f"/enrolment/{enrolment['id']}", headers=ADMIN).get_json()
    assert stored["status"] == "cancelled"


@pytest.mark.parametrize(
    "body",
    [{}, {"user_id": "u1"}, {"user_id": "u1", "course_id": "1"}, {"user_id": "u1", "course_id": 0}],
)
def test_bad_completion_bodies_are_400(enrolments_client, body):
    response = enrolments_client.post("/internal/enrolments/complete", json=body, headers=SERVICE)
    assert (response.status_code, response.get_json()["error"]) == (400, "validation_error")


def test_a_completed_enrolment_is_never_expired(
    enrolments_app: Flask, enrolments_client, fake_users, courses_app
):
    fake_users.add("done")
    fake_users.add("open")
    course = create_course(courses_app)
    finished = enrol(enrolments_client, "done", course["id"])
    ongoing = enrol(enrolments_client, "open", course["id"])
    complete(enrolments_client, "done", course["id"])
    response = courses_app.test_client().patch(
        f"/courses/{course['id']}",
        json={
            "start_date": datetime(2019, 12, 1, tzinfo=UTC).isoformat(),
            "end_date": datetime(2020, 1, 1, tzinfo=UTC).isoformat(),
        },
        headers=internal_headers("1", "admin"),
    )
    assert response.status_code == 200
    report = enrolments_client.patch("/enrolment/expired", headers=ADMIN).get_json()
    assert report["enrolment_ids"] == [ongoing["id"]]
    daily = enrolments_app.extensions["container"].service().expire_daily()
    assert daily is not None
    assert daily.expired == 0
    stored = enrolments_client.get(f"/enrolment/{finished['id']}", headers=ADMIN).get_json()
    assert stored["status"] == "completed"
    assert access(enrolments_client, "done", course["id"]).status_code == 200
