"""The internal course routes other services call, and migration 0002 on MariaDB and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from contracts.courses import MAX_BATCH_IDS
from courses import create_app
from courses.settings import CoursesSettings
from devtools.devservers import MariaDB
from devtools.helpers import TEST_INTERNAL_KEY, internal_headers

INSTRUCTOR = internal_headers("anna", "instructor")
SERVICE = internal_headers()  # another service: the internal key and nothing else


def create(client: FlaskClient, name: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "price": "10.00",
        "start_date": "2031-01-10T09:00:00Z",
        "end_date": "2031-02-10T09:00:00Z",
        **overrides,
    }
    response = client.post("/courses", json=body, headers=INSTRUCTOR)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_internal_get_answers_any_status_without_a_caller(courses_client: FlaskClient):
    draft = create(courses_client, "Internal Draft")
    assert draft["status"] == "draft"
    assert courses_client.get(f"/courses/{draft['id']}", headers=SERVICE).status_code == 404
    internal = courses_client.get(f"/internal/courses/{draft['id']}", headers=SERVICE)
    assert (internal.status_code, internal.get_json()) == (200, draft)
    missing = courses_client.get("/internal/courses/999999", headers=SERVICE)
    assert (missing.status_code, missing.get_json()["error"]) == (404, "course_not_found")
    assert courses_client.get(f"/internal/courses/{draft['id']}").status_code == 401


def test_internal_batch_answers_the_courses_that_exist(courses_client: FlaskClient):
    draft = create(courses_client, "Batch Draft")
    published = create(courses_client, "Batch Published", status="published")
    archived = create(courses_client, "Batch Archived", status="archived")
    ids = f"{archived['id']},999999,{draft['id']},{published['id']},{draft['id']}"
    response = courses_client.get("/internal/courses", query_string={"ids": ids}, headers=SERVICE)
    assert response.status_code == 200
    assert response.get_json() == {"courses": [draft, published, archived]}
    none = courses_client.get("/internal/courses", query_string={"ids": "999999"}, headers=SERVICE)
    assert none.get_json() == {"courses": []}
    most = ",".join(str(n) for n in range(1, MAX_BATCH_IDS + 1))
    full = courses_client.get("/internal/courses", query_string={"ids": most}, headers=SERVICE)
    assert len(full.get_json()["courses"]) == 3
    assert courses_client.get("/internal/courses", query_string={"ids": ids}).status_code == 401


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"ids": ""},
        {"ids": "1,,2"},
        {"ids": "0"},
        {"ids": "-1"},
        {"ids": "1.5"},
        {"ids": "a"},
        {"ids": " 1"},
        {"ids": str(2**63)},
        {"ids": ",".join(["1"] * (MAX_BATCH_IDS + 1))},
        {"ids": ["1", "2"]},
        {"ids": "1", "x": "1"},
    ],
)
def test_internal_batch_refuses_bad_ids(courses_client: FlaskClient, query):
    response = courses_client.get("/internal/courses", query_string=query, headers=SERVICE)
    assert (response.status_code, response.get_json()["error"]) == (400, "validation_error")


# -- migration 0002 ------------------------------------------------------------------------


def _app(database_url: str) -> Flask:
    return create_app(
        CoursesSettings(
            environment="test", database_url=database_url, internal_api_key=TEST_INTERNAL_KEY
        )
    )


@pytest.fixture(params=["mariadb", "sqlite"])
def fresh_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    if request.param == "mariadb":
        mariadb: MariaDB = request.getfixturevalue("mariadb")
        app = _app(mariadb.create_database("courses_migration_test"))
    else:  # what `make run` uses on embedded defaults
        app = _app(f"sqlite:///{tmp_path}/courses.db")
    yield app
    app.extensions["container"].database().dispose()


def test_0002_keeps_existing_courses_published_without_an_author(fresh_app: Flask):
    engine = fresh_app.extensions["container"].database().engine
    with fresh_app.app_context():
        upgrade(revision="0001")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO courses (name, name_key, price, currency, start_date, end_date,"
                " created_at, updated_at) VALUES ('Old', 'old', 5, 'PLN',"
                " '2031-01-01 00:00:00', '2031-02-01 00:00:00', '2026-01-01 00:00:00',"
                " '2026-01-01 00:00:00')"
            )
        )
    with fresh_app.app_context():
        upgrade()
    with engine.connect() as connection:
        row = connection.execute(text("SELECT id, author_id, status FROM courses")).one()
    assert (row.author_id, row.status) == (None, "published")
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("courses")}
    assert indexes["ix_courses_status_start_date"] == ["status", "start_date"]
    assert indexes["ix_courses_author_id"] == ["author_id"]
    client = fresh_app.test_client()
    listed = client.get("/courses", headers=SERVICE).get_json()
    assert [(c["id"], c["status"], c["author_id"]) for c in listed["courses"]] == [
        (row.id, "published", None)
    ]
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            ddl = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'courses'")
            ).scalar_one()
        assert "AUTOINCREMENT" in ddl  # deleted ids are still never reused
    with fresh_app.app_context():
        downgrade(revision="0001")
    columns = {column["name"] for column in inspect(engine).get_columns("courses")}
    assert not columns & {"author_id", "status"}
    with engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM courses")).scalar_one() == "Old"
