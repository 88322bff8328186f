"""Authors, statuses and who sees or changes which course, against a real MariaDB."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from courses.adapters.tables import CourseRecord
from devtools.helpers import internal_headers

ADMIN = internal_headers("admin-1", "admin")
ANNA = internal_headers("anna", "instructor")  # an instructor
BORIS = internal_headers("boris", "instructor")  # another one
USER = internal_headers("u-1", "user")
NOBODY = internal_headers()  # the internal key, no caller (an anonymous visitor)


def course(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Authored Course",
        "price": "49.00",
        "start_date": "2031-01-10T09:00:00Z",
        "end_date": "2031-02-10T09:00:00Z",
    }
    body.update(overrides)
    return body


def create(client: FlaskClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = client.post("/courses", json=course(**overrides), headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def error(response: Any) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]


def test_the_caller_is_the_author_and_the_default_status_follows_the_role(courses_client):
    drafted = create(courses_client, ANNA, name="By Anna")
    assert (drafted["author_id"], drafted["status"]) == ("anna", "draft")
    published = create(courses_client, ADMIN, name="By Admin")
    assert (published["author_id"], published["status"]) == ("admin-1", "published")
    chosen = create(courses_client, ANNA, name="Anna Publishes", status="published")
    assert chosen["status"] == "published"
    archived = create(courses_client, ADMIN, name="Admin Archives", status="archived")
    assert archived["status"] == "archived"


@pytest.mark.parametrize(
    "extra",
    [{"author_id": "boris"}, {"status": "deleted"}, {"status": None}, {"status": 1}],
)
def test_the_body_names_no_author_and_only_a_known_status(courses_client, extra):
    response = courses_client.post("/courses", json=course(**extra), headers=ANNA)
    assert error(response) == (400, "validation_error")


def test_a_plain_user_may_not_create_even_with_an_invalid_body(courses_client):
    assert error(courses_client.post("/courses", json=course(), headers=USER)) == (
        403,
        "forbidden",
    )
    assert courses_client.post("/courses", json={"x": 1}, headers=USER).status_code == 403
    assert courses_client.post("/courses", json=course(), headers=NOBODY).status_code == 401


def test_a_draft_is_seen_by_its_author_and_admins_only(courses_client):
    draft = create(courses_client, ANNA)
    path = f"/courses/{draft['id']}"
    for headers in (NOBODY, USER, BORIS):
        assert error(courses_client.get(path, headers=headers)) == (404, "course_not_found")
    assert courses_client.get(path, headers=ANNA).get_json() == draft
    assert courses_client.get(path, headers=ADMIN).get_json() == draft


def test_an_archived_course_is_readable_by_anyone(courses_client):
    archived = create(courses_client, ANNA, status="archived")
    response = courses_client.get(f"/courses/{archived['id']}", headers=NOBODY)
    assert (response.status_code, response.get_json()["status"]) == (200, "archived")


def test_the_catalogue_and_the_name_lookup_list_only_published_courses(courses_client):
    published = create(courses_client, ANNA, name="Shown Course", status="published")
    create(courses_client, ANNA, name="Draft Course")
    create(courses_client, ADMIN, name="Archived Course", status="archived")
    for headers in (NOBODY, ANNA, ADMIN):
        listing = courses_client.get("/courses", headers=headers).get_json()
        assert (listing["total"], listing["courses"]) == (1, [published]), headers
        searched = courses_client.get(
            "/courses", query_string={"search": "course"}, headers=headers
        ).get_json()
        assert [c["id"] for c in searched["courses"]] == [published["id"]]
    found = courses_client.get(
        "/courses", query_string={"exact_name": "shown course"}, headers=NOBODY
    )
    assert found.get_json() == published
    for name in ("Draft Course", "Archived Course"):
        for headers in (NOBODY, ANNA, ADMIN):
            hidden = courses_client.get(
                "/courses", query_string={"exact_name": name}, headers=headers
            )
            assert error(hidden) == (404, "course_not_found"), (name, headers)
            searched = courses_client.get("/courses", query_string={"name": name}, headers=headers)
            assert searched.get_json()["courses"] == [], (name, headers)


def test_the_author_and_admins_change_a_course_others_may_not(courses_client):
    mine = create(courses_client, ANNA, name="Anna's", status="published")
    path = f"/courses/{mine['id']}"
    by_author = courses_client.patch(path, json={"price": "10.00"}, headers=ANNA)
    assert (by_author.status_code, by_author.get_json()["price"]) == (200, "10.00")
    assert by_author.get_json()["author_id"] == "anna"
    by_admin = courses_client.patch(path, json={"price": "11.00"}, headers=ADMIN)
    assert (by_admin.status_code, by_admin.get_json()["author_id"]) == (200, "anna")
    refused = courses_client.patch(path, json={"price": "1.00"}, headers=BORIS)
    assert error(refused) == (403, "not_course_author")
    assert error(courses_client.delete(path, headers=BORIS)) == (403, "not_course_author")
    assert error(courses_client.patch(path, json={"price": "1.00"}, headers=USER)) == (
        403,
        "forbidden",
    )
    assert courses_client.get(path, headers=NOBODY).get_json()["price"] == "11.00"
    assert courses_client.delete(path, headers=ANNA).status_code == 204
    assert courses_client.get(path, headers=ADMIN).status_code == 404


def test_someone_elses_draft_is_a_404_to_a_non_admin_and_archived_is_a_403(courses_client):
    draft = create(courses_client, ANNA, name="Anna's Draft")
    archived = create(courses_client, ANNA, name="Anna's Old One", status="archived")
    draft_path, archived_path = f"/courses/{draft['id']}", f"/courses/{archived['id']}"
    assert error(courses_client.patch(draft_path, json={"price": "1.00"}, headers=BORIS)) == (
        404,
        "course_not_found",
    )
    assert error(courses_client.delete(draft_path, headers=BORIS)) == (404, "course_not_found")
    assert error(courses_client.patch(archived_path, json={"price": "1.00"}, headers=BORIS)) == (
        403,
        "not_course_author",
    )
    assert courses_client.delete(draft_path, headers=ADMIN).status_code == 204
    assert courses_client.delete(archived_path, headers=ADMIN).status_code == 204


def test_an_instructor_cannot_change_a_course_without_an_author(courses_client):
    legacy = create(courses_client, ADMIN, name="Legacy")
    with courses_client.application.extensions["container"].database().transaction() as session:
        session.execute(
            update(CourseRecord).where(CourseRecord.id == legacy["id"]).values(author_id=None)
        )
    path = f"/courses/{legacy['id']}"
    assert error(courses_client.patch(path, json={"price": "1.00"}, headers=ANNA)) == (
        403,
        "not_course_author",
    )
    patched = courses_client.patch(path, json={"price": "2.00"}, headers=ADMIN).get_json()
    assert (patched["author_id"], patched["price"]) == (None, "2.00")


def test_publishing_and_archiving_move_a_course_in_and_out_of_the_catalogue(courses_client):
    draft = create(courses_client, ANNA)
    path = f"/courses/{draft['id']}"

    def catalogue_ids() -> list[int]:
        listing = courses_client.get("/courses", headers=NOBODY).get_json()
        return [c["id"] for c in listing["courses"]]

    assert catalogue_ids() == []
    published = courses_client.patch(path, json={"status": "published"}, headers=ANNA)
    assert (published.status_code, published.get_json()["status"]) == (200, "published")
    assert published.get_json()["name"] == draft["name"]
    assert catalogue_ids() == [draft["id"]]
    archived = courses_client.patch(path, json={"status": "archived"}, headers=ANNA)
    assert archived.get_json()["status"] == "archived"
    assert catalogue_ids() == []
    assert courses_client.get(path, headers=NOBODY).get_json()["status"] == "archived"
    kept = courses_client.patch(path, json={"price": "5.00"}, headers=ANNA).get_json()
    assert kept["status"] == "archived"  # a change without status keeps it
    for bad in ({"status": None}, {"status": "gone"}, {"author_id": "boris"}):
        assert error(courses_client.patch(path, json=bad, headers=ANNA)) == (
            400,
            "validation_error",
        )


def test_an_authors_listing_shows_drafts_and_archived_ones_to_the_author_and_admins(
    courses_client,
):
    shown = [create(courses_client, ANNA, name=f"Shown {n}", status="published") for n in (1, 2)]
    draft = create(courses_client, ANNA, name="Drafted")
    archived = create(courses_client, ANNA, name="Archived", status="archived")
    create(courses_client, BORIS, name="Boris's", status="published")
    path = "/courses/author/anna"
    for headers in (NOBODY, USER, BORIS):
        listing = courses_client.get(path, headers=headers).get_json()
        assert listing == {"courses": shown, "page": 1, "per_page": 20, "total": 2}, headers
    for headers in (ANNA, ADMIN):
        listing = courses_client.get(path, headers=headers).get_json()
        assert listing["total"] == 4
        assert {c["id"] for c in listing["courses"]} == {
            *(c["id"] for c in shown),
            draft["id"],
            archived["id"],
        }
    paged = courses_client.get(path, query_string={"page": 2, "per_page": 3}, headers=ANNA)
    assert (paged.get_json()["total"], len(paged.get_json()["courses"])) == (4, 1)
    assert courses_client.get("/courses/author/nobody", headers=ADMIN).get_json()["total"] == 0


@pytest.mark.parametrize(
    "query", [{"per_page": 101}, {"per_page": 0}, {"page": 0}, {"page": 100_001}, {"sort": "name"}]
)
def test_an_authors_listing_has_the_catalogues_page_bounds(courses_client, query):
    response = courses_client.get("/courses/author/anna", query_string=query, headers=NOBODY)
    assert error(response) == (400, "validation_error")
