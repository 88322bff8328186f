"""pytest fixtures for the courses service, usable by every test tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from common.migrations import upgrade_to_head
from courses import create_app
from courses.adapters.tables import Base
from courses.settings import CoursesSettings
from devtools.devservers import MariaDB
from devtools.helpers import TEST_INTERNAL_KEY, truncate_all
from devtools.live import LiveServer


@pytest.fixture(scope="session")
def courses_app(mariadb: MariaDB) -> Iterator[Flask]:
    settings = CoursesSettings(
        environment="test",
        database_url=mariadb.create_database("courses_test"),
        internal_api_key=TEST_INTERNAL_KEY,
    )
    app = create_app(settings)
    upgrade_to_head(app)
    yield app
    app.extensions["container"].database().dispose()


@pytest.fixture
def courses_db(courses_app: Flask) -> None:
    """Each test starts with empty course tables."""
    truncate_all(courses_app.extensions["container"].database(), Base.metadata)
    return


@pytest.fixture
def courses_client(courses_app: Flask, courses_db: None) -> FlaskClient:
    return courses_app.test_client()


@pytest.fixture(scope="session")
def courses_server(courses_app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(courses_app).start()
    yield server
    server.stop()
