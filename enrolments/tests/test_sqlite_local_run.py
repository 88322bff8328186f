"""The rules that hold on MariaDB hold on the SQLite file `make run` uses by
default: SQLite ignores ``FOR UPDATE`` and reuses deleted ids unless told not to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from common.migrations import upgrade_to_head
from enrolments import create_app
from enrolments.testing import (
    ADMIN,
    EnrolmentsEnv,
    FakeUsers,
    create_course,
    enrol,
    enrol_concurrently,
    pay_concurrently,
)

pytestmark = pytest.mark.usefixtures("courses_db")


@pytest.fixture
def sqlite_app(enrolments_env: EnrolmentsEnv, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(enrolments_env.settings(database_url=f"sqlite:///{tmp_path}/enrolments.db"))
    upgrade_to_head(app)
    yield app
    app.extensions["container"].database().dispose()


@pytest.fixture
def sqlite_client(sqlite_app: Flask, fake_users: FakeUsers) -> FlaskClient:
    return sqlite_app.test_client()


def test_the_last_seat_goes_to_exactly_one_of_the_racers(
    sqlite_app: Flask, sqlite_client: FlaskClient, fake_users: FakeUsers, courses_app: Flask
):
    course = create_course(courses_app, max_participants=1)
    racers = [f"racer-{index}" for index in range(6)]
    for user in racers:
        fake_users.add(user)
    statuses = enrol_concurrently(sqlite_app, [(user, course["id"]) for user in racers])
    assert sorted(statuses) == [201] + [409] * 5


def test_a_double_click_on_paid_answers_one_200_and_one_409(
    sqlite_app: Flask, sqlite_client: FlaskClient, fake_users: FakeUsers, courses_app: Flask
):
    fake_users.add("buyer")
    enrolment = enrol(sqlite_client, "buyer", create_course(courses_app)["id"])
    statuses = pay_concurrently(sqlite_app, "buyer", enrolment["id"], times=4)
    assert sorted(statuses) == [200, 409, 409, 409]


def test_a_deleted_enrolment_id_is_never_handed_out_again(
    sqlite_client: FlaskClient, fake_users: FakeUsers, courses_app: Flask
):
    # The id is the invoice's oid at Fakturownia: a reused one would adopt someone
    # else's invoice.
    course = create_course(courses_app)
    fake_users.add("first")
    fake_users.add("second")
    first = enrol(sqlite_client, "first", course["id"])
    assert sqlite_client.delete(f"/enrolment/{first['id']}", headers=ADMIN).status_code == 204
    second = enrol(sqlite_client, "second", course["id"])
    assert second["id"] > first["id"]
