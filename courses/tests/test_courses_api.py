"""The courses service against a real MariaDB."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from courses.adapters.tables import CourseRecord
from devtools.helpers import internal_headers

ADMIN = internal_headers("1", "admin")
USER = internal_headers("2", "user")


def course(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Python for Data",
        "description": "Pandas and friends",
        "price": "199.99",
        "currency": "PLN",
        "max_participants": 10,
        "start_date": "2030-01-10T09:00:00+01:00",
        "end_date": "2030-02-10T09:00:00+01:00",
    }
    body.update(overrides)
    return body


def create(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/courses", json=course(**overrides), headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_create_returns_the_course_with_exact_price_and_utc_dates(courses_client: FlaskClient):
    created = create(courses_client)
    assert created["price"] == "199.99"
    assert created["start_date"] == "2030-01-10T08:00:00+00:00"
    assert created["currency"] == "PLN"
    fetched = courses_client.get(f"/courses/{created['id']}", headers=USER).get_json()
    assert fetched == created


def test_duplicate_name_is_refused_case_insensitively(courses_client: FlaskClient):
    create(courses_client, name="Intro to SQL")
    response = courses_client.post("/courses", json=course(name="  intro TO  sql "), headers=ADMIN)
    assert response.status_code == 409
    assert response.get_json()["error"] == "course_name_taken"


def test_two_concurrent_creates_of_one_name_give_one_201_and_one_409(courses_app, courses_db):
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def create_once() -> None:
        client = courses_app.test_client()
        barrier.wait()
        statuses.append(
            client.post("/courses", json=course(name="Race"), headers=ADMIN).status_code
        )

    threads = [threading.Thread(target=create_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"end_date": "2030-01-01T00:00:00Z"}, []),
        ({"price": "-1"}, ["price"]),
        ({"price": "1.999"}, ["price"]),
        ({"name": "x"}, ["name"]),
        ({"name": "y" * 65}, ["name"]),
        ({"max_participants": 0}, ["max_participants"]),
        ({"currency": "zł"}, ["currency"]),
        ({"currency": "XYZ"}, ["currency"]),  # the right shape, but no such currency
        ({"description": "d" * 2001}, ["description"]),
        ({"start_date": "2030-01-10T09:00:00"}, ["start_date"]),
        ({"role": "admin"}, ["role"]),
        ({"name": {"$ne": None}}, ["name"]),
        # Valid ISO 8601, but no datetime exists once moved to UTC (was a 500).
        ({"start_date": "0001-01-01T00:00:00+01:00"}, ["start_date"]),
        ({"end_date": "9999-12-31T23:59:59-05:00"}, ["end_date"]),
        # 20 characters whose NFKC form is 360: too long for the unique name key (was a 500).
        ({"name": "\ufdfa" * 20}, ["name"]),
    ],
)
def test_invalid_course_is_a_400_with_details(courses_client, overrides, field):
    response = courses_client.post("/courses", json=course(**overrides), headers=ADMIN)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "validation_error"
    assert body["request_id"]
    assert any(detail["loc"] == field for detail in body["details"]), body["details"]
    assert all(set(detail) == {"loc", "msg", "type"} for detail in body["details"])


def test_any_iso_4217_currency_is_accepted_and_patch_checks_it_too(courses_client):
    created = create(courses_client, currency="EUR")
    assert created["currency"] == "EUR"
    path = f"/courses/{created['id']}"
    refused = courses_client.patch(path, json={"currency": "ABC"}, headers=ADMIN)
    assert (refused.status_code, refused.get_json()["details"][0]["loc"]) == (400, ["currency"])
    changed = courses_client.patch(path, json={"currency": "USD"}, headers=ADMIN)
    assert changed.get_json()["currency"] == "USD"


def test_a_course_in_a_since_withdrawn_currency_can_still_be_edited(courses_client):
    created = create(courses_client)
    # Croatia's kuna was active when this course was priced; ISO withdrew it in 2023.
    with courses_client.application.extensions["container"].database().transaction() as session:
        session.execute(
            update(CourseRecord).where(CourseRecord.id == created["id"]).values(currency="HRK")
        )
    path = f"/courses/{created['id']}"
    edited = courses_client.patch(path, json={"price": "12.00"}, headers=ADMIN)
    assert edited.status_code == 200, edited.get_json()
    assert (edited.get_json()["price"], edited.get_json()["currency"]) == ("12.00", "HRK")
    # Choosing it anew is refused like any unknown code.
    again = courses_client.patch(path, json={"currency": "HRK"}, headers=ADMIN)
    assert again.status_code == 400


def test_patch_changes_only_sent_fields_and_rechecks_the_merged_course(courses_client):
    created = create(courses_client)
    path = f"/courses/{created['id']}"
    response = courses_client.patch(
        path, json={"price": "10.50", "max_participants": None}, headers=ADMIN
    )
    assert response.status_code == 200
    updated = response.get_json()
    assert (updated["price"], updated["max_participants"]) == ("10.50", None)
    assert updated["name"] == created["name"]
    bad = courses_client.patch(path, json={"end_date": "2029-01-01T00:00:00Z"}, headers=ADMIN)
    assert bad.status_code == 400
    overflow = courses_client.patch(
        path, json={"end_date": "9999-12-31T23:59:59-05:00"}, headers=ADMIN
    )
    assert overflow.status_code == 400
    assert courses_client.get(path, headers=USER).get_json()["end_date"] == created["end_date"]


def test_patch_of_an_unknown_course_is_a_404(courses_client):
    response = courses_client.patch("/courses/999999", json={"price": "1.00"}, headers=ADMIN)
    assert response.status_code == 404
    assert response.get_json()["error"] == "course_not_found"


def test_patch_moves_updated_at_and_keeps_created_at(courses_client):
    created = create(courses_client)
    with courses_client.application.extensions["container"].database().transaction() as session:
        session.execute(
            update(CourseRecord)
            .where(CourseRecord.id == created["id"])
            .values(created_at=datetime(2020, 1, 1), updated_at=datetime(2020, 1, 1))
        )
    path = f"/courses/{created['id']}"
    patched = courses_client.patch(path, json={"price": "99.00"}, headers=ADMIN).get_json()
    assert patched["created_at"] == "2020-01-01T00:00:00+00:00"
    assert datetime.fromisoformat(patched["updated_at"]) > datetime.now(UTC) - timedelta(minutes=1)
    assert courses_client.get(path, headers=USER).get_json() == patched


def test_patch_to_a_taken_name_is_a_409(courses_client):
    create(courses_client, name="First")
    second = create(courses_client, name="Second")
    response = courses_client.patch(
        f"/courses/{second['id']}", json={"name": "FIRST"}, headers=ADMIN
    )
    assert response.status_code == 409


def test_delete_then_get_is_404(courses_client):
    created = create(courses_client)
    assert courses_client.delete(f"/courses/{created['id']}", headers=ADMIN).status_code == 204
    response = courses_client.get(f"/courses/{created['id']}", headers=USER)
    assert response.status_code == 404
    assert response.get_json()["error"] == "course_not_found"
    assert courses_client.delete(f"/courses/{created['id']}", headers=ADMIN).status_code == 404


def test_writes_need_the_admin_role(courses_client):
    assert courses_client.post("/courses", json=course(), headers=USER).status_code == 403
    created = create(courses_client)
    assert (
        courses_client.patch(
            f"/courses/{created['id']}", json={"price": "1"}, headers=USER
        ).status_code
        == 403
    )
    assert courses_client.delete(f"/courses/{created['id']}", headers=USER).status_code == 403


def test_calls_without_the_internal_key_are_refused(courses_client):
    assert courses_client.get("/courses").status_code == 401
    assert courses_client.get("/health/live").status_code == 200


def test_find_by_exact_name(courses_client):
    create(courses_client, name="Exact Name")
    create(courses_client, name="Exact Name Plus")
    response = courses_client.get(
        "/courses", query_string={"exact_name": "exact name"}, headers=USER
    )
    assert response.status_code == 200
    assert response.get_json()["name"] == "Exact Name"
    missing = courses_client.get("/courses", query_string={"exact_name": "Nope"}, headers=USER)
    assert missing.status_code == 404


def test_the_seeds_name_search_is_a_paginated_contains_match(courses_client):
    for name in ("Python Basics", "Advanced PYTHON", "Rust", "100% Python_ish"):
        create(courses_client, name=name)
    found = courses_client.get(
        "/courses", query_string={"name": "python", "per_page": 2}, headers=USER
    ).get_json()
    assert set(found) == {"courses", "page", "per_page", "total"}
    assert (found["total"], found["page"], found["per_page"]) == (3, 1, 2)
    second = courses_client.get(
        "/courses", query_string={"name": "python", "per_page": 2, "page": 2}, headers=USER
    ).get_json()
    names = {c["name"] for c in found["courses"] + second["courses"]}
    assert names == {"Python Basics", "Advanced PYTHON", "100% Python_ish"}
    # % and _ are matched as themselves, not as wildcards.
    for literal, expected in (
        ("0%", ["100% Python_ish"]),
        ("n_i", ["100% Python_ish"]),
        ("%", ["100% Python_ish"]),
    ):
        hits = courses_client.get("/courses", query_string={"name": literal}, headers=USER)
        assert [c["name"] for c in hits.get_json()["courses"]] == expected, literal
    none = courses_client.get("/courses", query_string={"name": "Haskell"}, headers=USER)
    assert none.status_code == 200
    assert none.get_json()["courses"] == []


def test_catalogue_paginates_filters_and_sorts(courses_client):
    for index, price in enumerate(["10.00", "20.00", "30.00", "40.00"]):
        create(
            courses_client,
            name=f"Course {index}",
            price=price,
            start_date=f"2030-0{index + 1}-01T00:00:00Z",
            end_date="2031-01-01T00:00:00Z",
        )
    create(courses_client, name="100% off_sale", price="5.00")
    page = courses_client.get(
        "/courses", query_string={"per_page": 2, "page": 2, "sort": "-price"}, headers=USER
    ).get_json()
    assert page["total"] == 5
    assert [c["price"] for c in page["courses"]] == ["20.00", "10.00"]
    priced = courses_client.get(
        "/courses", query_string={"min_price": "15", "max_price": "35"}, headers=USER
    ).get_json()
    assert sorted(c["price"] for c in priced["courses"]) == ["20.00", "30.00"]
    dated = courses_client.get(
        "/courses", query_string={"starts_after": "2030-02-15T00:00:00Z"}, headers=USER
    ).get_json()
    assert {c["name"] for c in dated["courses"]} == {"Course 2", "Course 3"}
    before = courses_client.get(
        "/courses", query_string={"starts_before": "2030-02-15T00:00:00Z"}, headers=USER
    ).get_json()
    assert {c["name"] for c in before["courses"]} == {"Course 0", "Course 1", "100% off_sale"}
    window = courses_client.get(
        "/courses",
        query_string={
            "starts_after": "2030-01-15T00:00:00Z",
            "starts_before": "2030-03-15T00:00:00Z",
        },
        headers=USER,
    ).get_json()
    assert ({c["name"] for c in window["courses"]}, window["total"]) == (
        {"Course 1", "Course 2"},
        2,
    )
    # LIKE wildcards in the search term are matched literally.
    assert (
        courses_client.get("/courses", query_string={"search": "%"}, headers=USER).get_json()[
            "total"
        ]
        == 1
    )
    assert (
        courses_client.get("/courses", query_string={"search": "f_s"}, headers=USER).get_json()[
            "total"
        ]
        == 1
    )
    assert (
        courses_client.get("/courses", query_string={"search": "COURSE"}, headers=USER).get_json()[
            "total"
        ]
        == 4
    )


@pytest.mark.parametrize(
    "query",
    [
        {"per_page": 1000},
        {"page": 0},
        {"sort": "password"},
        {"min_price": "-1"},
        {"starts_after": "yesterday"},
        {"starts_after": "0001-01-01T00:00:00+01:00"},
        {"starts_before": "9999-12-31T23:59:59-05:00"},
        {"unknown": "1"},
    ],
)
def test_bad_catalogue_queries_are_400(courses_client, query):
    response = courses_client.get("/courses", query_string=query, headers=USER)
    assert response.status_code == 400
    assert response.get_json()["error"] == "validation_error"


def test_envelope_for_protocol_errors(courses_client):
    not_json = courses_client.post(
        "/courses", data="name=x", headers=ADMIN, content_type="application/x-www-form-urlencoded"
    )
    assert (not_json.status_code, not_json.get_json()["error"]) == (415, "unsupported_media_type")
    malformed = courses_client.post(
        "/courses", data="{oops", headers=ADMIN, content_type="application/json"
    )
    assert (malformed.status_code, malformed.get_json()["error"]) == (400, "malformed_json")
    wrong_method = courses_client.put("/courses", headers=ADMIN)
    assert (wrong_method.status_code, wrong_method.get_json()["error"]) == (
        405,
        "method_not_allowed",
    )
    unknown = courses_client.get("/nowhere", headers=ADMIN)
    assert (unknown.status_code, unknown.get_json()["error"]) == (404, "not_found")


def test_readiness_reports_the_database(courses_client):
    response = courses_client.get("/health/ready")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok"}


@pytest.mark.parametrize("moment", ["0.5", "1700000000", "-1", "1e9"])
def test_query_datetimes_are_iso_8601_only(courses_client, moment):
    response = courses_client.get("/courses", query_string={"starts_before": moment}, headers=USER)
    assert response.status_code == 400
    assert response.get_json()["error"] == "validation_error"


@pytest.mark.parametrize("field", ["name", "price", "currency", "start_date", "end_date"])
def test_patch_refuses_null_for_a_field_that_must_have_a_value(courses_client, field):
    created = create(courses_client)
    response = courses_client.patch(f"/courses/{created['id']}", json={field: None}, headers=ADMIN)
    assert response.status_code == 400
    cleared = courses_client.patch(
        f"/courses/{created['id']}", json={"description": None}, headers=ADMIN
    )
    assert cleared.status_code == 200
