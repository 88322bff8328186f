"""Enrolment rules and endpoints against real MariaDB, the real courses service,
a users stand-in on a socket and the real SMTP sink."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select, update

from common.errors import UpstreamUnavailable
from devtools.helpers import internal_headers
from devtools.smtp_sink import SmtpSink, message_text
from enrolments.adapters.tables import EnrolmentRecord
from enrolments.domain import EXPIRY_JOB, EXPIRY_REPORT_CAP
from enrolments.testing import (
    ADMIN,
    FakeUsers,
    create_course,
    enrol,
    enrol_concurrently,
    iso,
    pay,
    reschedule,
    user_headers,
)

pytestmark = pytest.mark.usefixtures("enrolments_db")


@pytest.fixture
def course(courses_app: Flask) -> dict:
    return create_course(courses_app, name="Python for Data", price="199.99")


@pytest.fixture
def mail_relay(enrolments_app: Flask, smtp_sink: SmtpSink) -> Iterator[None]:
    relay = enrolments_app.extensions["container"].mail_relay()
    relay._stop.clear()
    relay.start()
    yield
    relay.stop()


def test_enrol_snapshots_the_course_and_mails_a_confirmation(
    enrolments_client: FlaskClient, fake_users: FakeUsers, course, smtp_sink, mail_relay
):
    fake_users.add("u1", email="ada@example.com")
    created = enrol(enrolments_client, "u1", course["id"])
    assert created["user_id"] == "u1"
    assert created["course_id"] == course["id"]
    assert (created["status"], created["payment_status"]) == ("active", "pending")
    assert (created["price"], created["currency"]) == ("199.99", "PLN")
    assert created["course_end_date"] == course["end_date"]
    assert (created["invoice_status"], created["invoice"], created["paid_at"]) == (
        "none",
        None,
        None,
    )
    [message] = smtp_sink.wait_for(1)
    assert message["To"] == "ada@example.com"
    assert "Python for Data" in message_text(message)


def test_unknown_or_inactive_user_and_unknown_or_ended_course(
    enrolments_client: FlaskClient, fake_users: FakeUsers, courses_app, course
):
    response = enrolments_client.post(
        "/enrolment", json={"course_id": course["id"]}, headers=user_headers("ghost")
    )
    assert (response.status_code, response.get_json()["error"]) == (404, "user_not_found")
    fake_users.add("sleepy", active=False)
    response = enrolments_client.post(
        "/enrolment", json={"course_id": course["id"]}, headers=user_headers("sleepy")
    )
    assert (response.status_code, response.get_json()["error"]) == (409, "user_inactive")
    fake_users.add("u1")
    response = enrolments_client.post(
        "/enrolment", json={"course_id": 999999}, headers=user_headers("u1")
    )
    assert (response.status_code, response.get_json()["error"]) == (404, "course_not_found")
    now = datetime.now(UTC)
    ended = create_course(
        courses_app,
        start_date=iso(now - timedelta(days=30)),
        end_date=iso(now - timedelta(minutes=1)),
    )
    response = enrolments_client.post(
        "/enrolment", json={"course_id": ended["id"]}, headers=user_headers("u1")
    )
    assert (response.status_code, response.get_json()["error"]) == (409, "course_ended")


def test_duplicate_is_409_and_a_cancelled_enrolment_frees_the_pair(
    enrolments_client: FlaskClient, fake_users: FakeUsers, course
):
    fake_users.add("u1")
    first = enrol(enrolments_client, "u1", course["id"])
    again = enrol(enrolments_client, "u1", course["id"], expect=409)
    assert again["error"] == "already_enrolled"
    cancelled = enrolments_client.post(
        f"/enrolment/{first['id']}/cancel", headers=user_headers("u1")
    )
    assert (cancelled.status_code, cancelled.get_json()["status"]) == (200, "cancelled")
    enrol(enrolments_client, "u1", course["id"])


def test_concurrent_duplicates_give_one_201(enrolments_app, enrolments_client, fake_users, course):
    fake_users.add("u1")
    statuses = enrol_concurrently(enrolments_app, [("u1", course["id"])] * 4)
    assert sorted(statuses) == [201, 409, 409, 409]


def test_full_course_and_a_concurrent_last_seat(
    enrolments_app, enrolments_client: FlaskClient, fake_users: FakeUsers, courses_app
):
    small = create_course(courses_app, max_participants=2)
    for user in ("a", "b", "c", "d", "e", "f"):
        fake_users.add(user)
    enrol(enrolments_client, "a", small["id"])
    # One seat left, five users racing for it: exactly one wins.
    statuses = enrol_concurrently(
        enrolments_app, [(u, small["id"]) for u in ("b", "c", "d", "e", "f")]
    )
    assert sorted(statuses) == [201, 409, 409, 409, 409]
    full = enrolments_client.post(
        "/enrolment", json={"course_id": small["id"]}, headers=user_headers("f")
    )
    assert full.get_json()["error"] in ("course_full", "already_enrolled")
    listed = enrolments_client.get(
        "/enrolment/active", query_string={"course_id": small["id"]}, headers=ADMIN
    ).get_json()
    assert listed["total"] == 2


def test_only_admins_enrol_others(enrolments_client, fake_users, course):
    fake_users.add("u1")
    fake_users.add("u2")
    refused = enrolments_client.post(
        "/enrolment", json={"course_id": course["id"], "user_id": "u2"}, headers=user_headers("u1")
    )
    assert refused.status_code == 403
    done = enrolments_client.post(
        "/enrolment", json={"course_id": course["id"], "user_id": "u2"}, headers=ADMIN
    )
    assert (done.status_code, done.get_json()["user_id"]) == (201, "u2")


def test_mark_paid_rules(enrolments_client, fake_users, course):
    fake_users.add("u1")
    fake_users.add("u2")
    created = enrol(enrolments_client, "u1", course["id"])
    other = enrolments_client.patch(
        "/enrolment/paid", json={"enrolment_id": created["id"]}, headers=user_headers("u2")
    )
    assert (other.status_code, other.get_json()["error"]) == (404, "enrolment_not_found")
    paid = pay(enrolments_client, "u1", created["id"])
    assert (paid["payment_status"], paid["invoice_status"]) == ("paid", "pending")
    assert paid["paid_at"] is not None
    again = enrolments_client.patch(
        "/enrolment/paid", json={"enrolment_id": created["id"]}, headers=ADMIN
    )
    assert (again.status_code, again.get_json()["error"]) == (409, "already_paid")
    cancel = enrolments_client.post(
        f"/enrolment/{created['id']}/cancel", headers=user_headers("u1")
    )
    assert (cancel.status_code, cancel.get_json()["error"]) == (409, "enrolment_paid")
    delete = enrolments_client.delete(f"/enrolment/{created['id']}", headers=ADMIN)
    assert (delete.status_code, delete.get_json()["error"]) == (409, "invoice_pending")


def test_reads_and_who_may_see_what(enrolments_client, fake_users, courses_app, course):
    fake_users.add("u1")
    fake_users.add("u2")
    second = create_course(courses_app)
    mine_a = enrol(enrolments_client, "u1", course["id"])
    enrol(enrolments_client, "u1", second["id"])
    theirs = enrol(enrolments_client, "u2", course["id"])

    details = enrolments_client.get(
        f"/enrolment/{mine_a['id']}/details", headers=user_headers("u1")
    )
    assert details.get_json() == mine_a
    hidden = enrolments_client.get(f"/enrolment/{theirs['id']}/details", headers=user_headers("u1"))
    assert hidden.status_code == 404
    assert (
        enrolments_client.get(f"/enrolment/{theirs['id']}", headers=user_headers("u1")).status_code
        == 403
    )
    assert enrolments_client.get(f"/enrolment/{theirs['id']}", headers=ADMIN).get_json() == theirs

    mine = enrolments_client.get(
        "/enrolment/mine", query_string={"per_page": 1}, headers=user_headers("u1")
    ).get_json()
    assert (mine["total"], mine["per_page"], len(mine["enrolments"])) == (2, 1, 1)
    assert mine["enrolments"][0]["user_id"] == "u1"
    active = enrolments_client.get("/enrolment/active", headers=ADMIN).get_json()
    assert active["total"] == 3
    assert enrolments_client.get("/enrolment/active", headers=user_headers("u1")).status_code == 403
    bad = enrolments_client.get(
        "/enrolment/mine", query_string={"per_page": 500}, headers=user_headers("u1")
    )
    assert bad.status_code == 400
    beyond_any_row = enrolments_client.get(
        "/enrolment/active", query_string={"course_id": 2**63}, headers=ADMIN
    )
    assert (beyond_any_row.status_code, beyond_any_row.get_json()["error"]) == (
        400,
        "validation_error",
    )
    assert enrolments_client.get(f"/enrolment/{2**64}", headers=ADMIN).status_code == 404


def test_delete_is_admin_only(enrolments_client, fake_users, course):
    fake_users.add("u1")
    created = enrol(enrolments_client, "u1", course["id"])
    assert (
        enrolments_client.delete(
            f"/enrolment/{created['id']}", headers=user_headers("u1")
        ).status_code
        == 403
    )
    assert enrolments_client.delete(f"/enrolment/{created['id']}", headers=ADMIN).status_code == 204
    assert enrolments_client.get(f"/enrolment/{created['id']}", headers=ADMIN).status_code == 404


def test_admin_expiry_moves_ended_active_enrolments(
    enrolments_client, fake_users, course, courses_app
):
    for user in ("u1", "u2", "u3"):
        fake_users.add(user)
    ids = [enrol(enrolments_client, u, course["id"])["id"] for u in ("u1", "u2", "u3")]
    enrolments_client.post(f"/enrolment/{ids[2]}/cancel", headers=user_headers("u3"))
    # The course is moved into the past after people enrolled: expiry follows the course.
    reschedule(
        courses_app,
        course["id"],
        datetime(2019, 12, 1, tzinfo=UTC),
        datetime(2020, 1, 1, tzinfo=UTC),
    )
    assert (
        enrolments_client.patch("/enrolment/expired", headers=user_headers("u1")).status_code == 403
    )
    report = enrolments_client.patch("/enrolment/expired", headers=ADMIN).get_json()
    assert report == {"expired": 2, "enrolment_ids": sorted(ids[:2]), "truncated": False}
    assert (
        enrolments_client.get(f"/enrolment/{ids[0]}", headers=ADMIN).get_json()["status"]
        == "expired"
    )
    again = enrolments_client.patch("/enrolment/expired", headers=ADMIN).get_json()
    assert again["expired"] == 0


def test_expiry_waits_while_the_courses_service_is_away(
    enrolments_app, enrolments_client, fake_users, course, courses_app, monkeypatch
):
    fake_users.add("u1")
    enrolment = enrol(enrolments_client, "u1", course["id"])
    reschedule(
        courses_app,
        course["id"],
        datetime(2019, 12, 1, tzinfo=UTC),
        datetime(2020, 1, 1, tzinfo=UTC),
    )
    container = enrolments_app.extensions["container"]

    def courses_away(_course_ids: list[int]) -> None:
        raise UpstreamUnavailable()

    monkeypatch.setattr(container.courses(), "get_many", courses_away)
    refused = enrolments_client.patch("/enrolment/expired", headers=ADMIN)
    assert refused.status_code == 503
    assert container.service().expire_daily() is None
    assert container.repository().job_runs(EXPIRY_JOB) == []
    view = enrolments_client.get(f"/enrolment/{enrolment['id']}", headers=ADMIN).get_json()
    assert view["status"] == "active"
    monkeypatch.undo()
    # Back: the day's run happens at the next check, on the course's real end date.
    report = container.service().expire_daily()
    assert report is not None
    assert report.enrolment_ids == [enrolment["id"]]


def test_expiry_follows_a_course_extended_after_enrolment(
    enrolments_app, enrolments_client, fake_users, course, courses_app
):
    fake_users.add("u1")
    enrolment = enrol(enrolments_client, "u1", course["id"])
    # The copy taken at enrolment says the course has ended; the course now runs longer.
    database = enrolments_app.extensions["container"].database()
    with database.transaction() as session:
        session.execute(
            update(EnrolmentRecord)
            .where(EnrolmentRecord.id == enrolment["id"])
            .values(course_end_date=datetime(2020, 1, 1))
        )
    report = enrolments_client.patch("/enrolment/expired", headers=ADMIN).get_json()
    assert report["expired"] == 0
    kept = enrolments_client.get(f"/enrolment/{enrolment['id']}", headers=ADMIN).get_json()
    assert kept["status"] == "active"
    assert kept["course_end_date"] == course["end_date"]


def test_admin_expiry_lists_at_most_the_cap_of_ids_and_says_it_truncated(
    enrolments_app, enrolments_client
):
    ended = 5 + EXPIRY_REPORT_CAP  # more than one expiry batch, too
    rows = [
        {
            "user_id": f"x{n}",
            "course_id": 1,
            "status": "active",
            "payment_status": "pending",
            "live_key": f"x{n}:1",
            "course_name": "Old Course",
            "price": Decimal("1.00"),
            "currency": "PLN",
            "course_end_date": datetime(2020, 1, 1),
            "buyer_name": "X",
            "buyer_email": "x@example.com",
            "invoice_status": "none",
        }
        for n in range(ended)
    ]
    database = enrolments_app.extensions["container"].database()
    with database.transaction() as session:
        session.execute(insert(EnrolmentRecord), rows)
        ids = sorted(session.scalars(select(EnrolmentRecord.id)))
    report = enrolments_client.patch("/enrolment/expired", headers=ADMIN).get_json()
    assert (report["expired"], report["truncated"]) == (ended, True)
    assert report["enrolment_ids"] == ids[:EXPIRY_REPORT_CAP]
    with database.transaction() as session:
        expired = session.scalar(select(func.count()).where(EnrolmentRecord.status == "expired"))
    assert expired == ended


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"course_id": "1"},
        {"course_id": 0},
        {"course_id": True},
        {"course_id": 1, "x": 1},
        {"course_id": 1, "user_id": "../admin"},
    ],
)
def test_invalid_enrol_bodies_are_400(enrolments_client, body):
    response = enrolments_client.post("/enrolment", json=body, headers=user_headers("u1"))
    assert (response.status_code, response.get_json()["error"]) == (400, "validation_error")


def test_identity_and_internal_key_are_required(enrolments_client):
    assert enrolments_client.get("/enrolment/mine").status_code == 401
    no_caller = enrolments_client.get("/enrolment/mine", headers=ADMIN | {"X-User-Id": ""})
    assert no_caller.status_code == 401


def test_users_service_down_is_503(enrolments_app, enrolments_env, course):
    from devtools.devservers import free_port
    from enrolments.adapters.upstreams import UsersClient

    service = enrolments_app.extensions["container"].service()
    original = service.users
    service.users = UsersClient(f"http://127.0.0.1:{free_port()}", internal_key="k", timeout=1)
    try:
        response = enrolments_app.test_client().post(
            "/enrolment", json={"course_id": course["id"]}, headers=user_headers("u1")
        )
        assert (response.status_code, response.get_json()["error"]) == (503, "upstream_unavailable")
    finally:
        service.users = original


# -- an ended course is neither enrolled in nor paid for --------------------------------------


def test_an_ended_course_is_not_paid_for_even_before_the_expiry_job_runs(
    enrolments_client, fake_users, course, courses_app
):
    for user in ("u1", "u2", "u3"):
        fake_users.add(user)
    first = enrol(enrolments_client, "u1", course["id"])
    second = enrol(enrolments_client, "u2", course["id"])
    now = datetime.now(UTC)
    reschedule(courses_app, course["id"], now - timedelta(days=30), now - timedelta(minutes=1))
    # The expiry job has not run: the enrolments are still active, and unpaid they stay.
    for user_id, headers in (("u1", user_headers("u1")), ("u2", ADMIN)):
        enrolment_id = first["id"] if user_id == "u1" else second["id"]
        refused = enrolments_client.patch(
            "/enrolment/paid", json={"enrolment_id": enrolment_id}, headers=headers
        )
        assert (refused.status_code, refused.get_json()["error"]) == (409, "course_ended")
    view = enrolments_client.get(f"/enrolment/{first['id']}", headers=ADMIN).get_json()
    assert (view["status"], view["payment_status"], view["invoice_status"]) == (
        "active",
        "pending",
        "none",
    )
    late = enrolments_client.post(
        "/enrolment", json={"course_id": course["id"]}, headers=user_headers("u3")
    )
    assert (late.status_code, late.get_json()["error"]) == (409, "course_ended")
    # Extended again: payable again, judged on the course's end date now.
    reschedule(courses_app, course["id"], now - timedelta(days=30), now + timedelta(days=3))
    assert pay(enrolments_client, "u1", first["id"])["payment_status"] == "paid"


def test_a_deleted_course_is_judged_on_its_last_known_end_date(
    enrolments_app, enrolments_client, fake_users, course, courses_app
):
    fake_users.add("u1")
    enrolment = enrol(enrolments_client, "u1", course["id"])
    gone = courses_app.test_client().delete(
        f"/courses/{course['id']}", headers=internal_headers("1", "admin")
    )
    assert gone.status_code == 204
    database = enrolments_app.extensions["container"].database()
    with database.transaction() as session:
        session.execute(
            update(EnrolmentRecord)
            .where(EnrolmentRecord.id == enrolment["id"])
            .values(course_end_date=datetime(2020, 1, 1))
        )
    refused = enrolments_client.patch(
        "/enrolment/paid", json={"enrolment_id": enrolment["id"]}, headers=user_headers("u1")
    )
    assert (refused.status_code, refused.get_json()["error"]) == (409, "course_ended")


# -- the expiry reads the courses in bulk ----------------------------------------------------


def insert_courses(courses_app: Flask, count: int, end: datetime) -> list[int]:
    from courses.adapters.tables import CourseRecord

    stamp = time.monotonic_ns()
    rows = [
        {
            "status": "published",
            "name": f"Bulk {stamp} {n}",
            "name_key": f"bulk {stamp} {n}",
            "price": Decimal("10.00"),
            "currency": "PLN",
            "start_date": end - timedelta(days=30),
            "end_date": end,
        }
        for n in range(count)
    ]
    database = courses_app.extensions["container"].database()
    with database.transaction() as session:
        session.execute(insert(CourseRecord), rows)
        return sorted(session.scalars(select(CourseRecord.id)))


def count_courses_calls(enrolments_app: Flask, monkeypatch) -> list[str]:
    client = enrolments_app.extensions["container"].courses().client
    original = client.get
    calls: list[str] = []

    def counted(path: str, **kwargs):
        calls.append(path)
        return original(path, **kwargs)

    monkeypatch.setattr(client, "get", counted)
    return calls


def test_the_expiry_of_10000_enrolments_over_500_courses_makes_one_courses_call(
    enrolments_app, enrolments_client, courses_app, monkeypatch
):
    # The copies taken at enrolment say the courses run on; they ended yesterday.
    course_ids = insert_courses(courses_app, 500, datetime(2020, 1, 1))
    rows = [
        {
            "user_id": f"x{n}",
            "course_id": course_ids[n % 500],
            "status": "active",
            "payment_status": "pending",
            "live_key": f"x{n}:{course_ids[n % 500]}",
            "course_name": "Bulk",
            "price": Decimal("10.00"),
            "currency": "PLN",
            "course_end_date": datetime(2999, 1, 1),
            "buyer_name": "X",
            "buyer_email": "x@example.com",
            "invoice_status": "none",
        }
        for n in range(10_000)
    ]
    database = enrolments_app.extensions["container"].database()
    with database.transaction() as session:
        session.execute(insert(EnrolmentRecord), rows)
    calls = count_courses_calls(enrolments_app, monkeypatch)
    report = enrolments_client.patch("/enrolment/expired", headers=ADMIN).get_json()
    assert report["expired"] == 10_000
    assert calls == ["/internal/courses"]


def test_the_bulk_lookup_asks_for_at_most_500_ids_a_call(enrolments_app, courses_app, monkeypatch):
    existing = insert_courses(courses_app, 3, datetime(2030, 1, 1))
    wanted = [*existing, *range(10**9, 10**9 + 1198), existing[0]]  # 1,201 distinct ids + 1
    calls = count_courses_calls(enrolments_app, monkeypatch)
    found = enrolments_app.extensions["container"].courses().get_many(wanted)
    assert sorted(found) == existing
    assert found[existing[0]].end_date == datetime(2030, 1, 1, tzinfo=UTC)
    assert calls == ["/internal/courses"] * 3
