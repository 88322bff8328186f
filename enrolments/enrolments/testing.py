"""pytest fixtures for the enrolments service, usable by every test tier.

The users service is stood in by a tiny Flask app on a real socket that speaks
its one internal endpoint; courses is the real service; Fakturownia is the
sandbox; SMTP is the real sink.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, abort, jsonify
from flask.testing import FlaskClient

from common.mail import MailSettings
from common.migrations import upgrade_to_head
from devtools.devservers import ManagedProcess, MariaDB
from devtools.helpers import TEST_INTERNAL_KEY, internal_headers, truncate_all
from devtools.live import LiveServer
from devtools.sandbox import Sandbox
from devtools.smtp_sink import SmtpSink
from enrolments import create_app
from enrolments.adapters.tables import Base
from enrolments.settings import EnrolmentsSettings


class FakeUsers:
    """``GET /internal/users/<id>`` of the users service, nothing else."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.app = Flask("fake_users")

        @self.app.get("/internal/users/<user_id>")
        def get_user(user_id: str) -> Any:
            with self.lock:
                user = self.users.get(user_id)
            if user is None:
                abort(404)
            return jsonify(user)

    def add(self, user_id: str, *, active: bool = True, **fields: Any) -> dict[str, Any]:
        user = {
            "id": user_id,
            "username": f"user{user_id}",
            "email": f"user{user_id}@example.com",
            "first_name": "Ada",
            "last_name": f"Student{user_id}",
            "gender": "female",
            "role": "user",
            "is_active": active,
            "mfa_enabled": False,
            "tokens_valid_after": None,
            **fields,
        }
        with self.lock:
            self.users[user_id] = user
        return user

    def clear(self) -> None:
        with self.lock:
            self.users.clear()


@pytest.fixture(scope="session")
def fake_users_server() -> Iterator[tuple[FakeUsers, LiveServer]]:
    fake = FakeUsers()
    server = LiveServer(fake.app).start()
    yield fake, server
    server.stop()


@pytest.fixture
def fake_users(fake_users_server: tuple[FakeUsers, LiveServer]) -> FakeUsers:
    fake, _ = fake_users_server
    fake.clear()
    return fake


def enrolments_settings(**overrides: Any) -> EnrolmentsSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "internal_api_key": TEST_INTERNAL_KEY,
        "run_workers": False,
        "invoice_workers": 8,
        "invoice_lease_seconds": 5.0,
        "invoice_backoff_base": 0.05,
        "invoice_backoff_cap": 0.5,
        "worker_poll_interval": 0.1,
        "mail_backoff_base": 0.1,
        "fakturownia_timeout": 0.5,
        "fakturownia_seller_name": "Course Platform Test",
        "upstream_timeout": 5.0,
    }
    values.update(overrides)
    return EnrolmentsSettings(**values)


class EnrolmentsEnv:
    """Everything a test needs to build an enrolments app or worker process."""

    def __init__(
        self,
        database_url: str,
        users: LiveServer,
        courses: LiveServer,
        sandbox: Sandbox,
        smtp: SmtpSink,
    ) -> None:
        self.database_url = database_url
        self.users_url = users.url
        self.courses_url = courses.url
        self.sandbox = sandbox
        self.smtp = smtp

    def settings(self, **overrides: Any) -> EnrolmentsSettings:
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "users_url": self.users_url,
            "courses_url": self.courses_url,
            "fakturownia_url": self.sandbox.url,
            "fakturownia_api_token": self.sandbox.token,
            "mail": MailSettings(server="127.0.0.1", port=self.smtp.port, timeout=5),
        }
        values.update(overrides)
        return enrolments_settings(**values)

    def worker_env(self, **overrides: str) -> dict[str, str]:
        """Environment of a ``flask --app enrolments invoice-worker`` process."""
        env = {
            **os.environ,
            "ENVIRONMENT": "test",
            "INTERNAL_API_KEY": TEST_INTERNAL_KEY,
            "DATABASE_URL": self.database_url,
            "USERS_URL": self.users_url,
            "COURSES_URL": self.courses_url,
            "FAKTUROWNIA_URL": self.sandbox.url,
            "FAKTUROWNIA_API_TOKEN": self.sandbox.token,
            "FAKTUROWNIA_TIMEOUT": "0.5",
            "INVOICE_WORKERS": "8",
            "INVOICE_LEASE_SECONDS": "3",
            "INVOICE_BACKOFF_BASE": "0.05",
            "INVOICE_BACKOFF_CAP": "0.5",
            "WORKER_POLL_INTERVAL": "0.1",
            "EXPIRY_CHECK_INTERVAL": "0.2",
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(self.smtp.port),
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
        env.update(overrides)
        return env


WORKER_ARGV = ("-m", "flask", "--app", "enrolments", "invoice-worker")


def spawn_worker_process(env: dict[str, str], log_path: Path) -> ManagedProcess:
    """``flask --app enrolments invoice-worker`` as its own process. It runs in
    the log's directory: in the repository root, the ``enrolments/`` project
    folder would shadow the installed package."""
    return ManagedProcess(
        f"invoice-worker-{log_path.stem}",
        [sys.executable, *WORKER_ARGV],
        log_path,
        env=env,
        cwd=str(log_path.parent),
    )


def wait_started(process: ManagedProcess, log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while b"invoice_worker_started" not in log_path.read_bytes():
        process.ensure_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"{process.name} did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)


def start_worker_process(env: dict[str, str], log_path: Path) -> ManagedProcess:
    process = spawn_worker_process(env, log_path)
    wait_started(process, log_path)
    return process


@pytest.fixture(scope="session")
def enrolments_env(
    mariadb: MariaDB,
    fake_users_server: tuple[FakeUsers, LiveServer],
    courses_server: LiveServer,
    sandbox_session: Sandbox,
    smtp_sink_session: SmtpSink,
) -> EnrolmentsEnv:
    return EnrolmentsEnv(
        mariadb.create_database("enrolments_test"),
        fake_users_server[1],
        courses_server,
        sandbox_session,
        smtp_sink_session,
    )


@pytest.fixture(scope="session")
def enrolments_app(enrolments_env: EnrolmentsEnv) -> Iterator[Flask]:
    app = create_app(enrolments_env.settings())
    upgrade_to_head(app)
    yield app
    app.extensions["container"].database().dispose()


@pytest.fixture
def enrolments_db(enrolments_app: Flask, courses_db: None) -> None:
    """Each test starts with empty enrolment and course tables."""
    truncate_all(enrolments_app.extensions["container"].database(), Base.metadata)


@pytest.fixture
def enrolments_client(
    enrolments_app: Flask, enrolments_db: None, fake_users: FakeUsers, sandbox: Sandbox
) -> FlaskClient:
    return enrolments_app.test_client()


# --- helpers for tests that drive the service ---

ADMIN = internal_headers("admin-1", "admin")


def user_headers(user_id: str) -> dict[str, str]:
    return internal_headers(user_id, "user")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def create_course(courses_app: Flask, **overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "name": f"Course {time.monotonic_ns()}",
        "price": "199.99",
        "currency": "PLN",
        "max_participants": None,
        "start_date": iso(now + timedelta(days=10)),
        "end_date": iso(now + timedelta(days=40)),
    }
    body.update(overrides)
    response = courses_app.test_client().post(
        "/courses", json=body, headers=internal_headers("1", "admin")
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def reschedule(courses_app: Flask, course_id: int, start: datetime, end: datetime) -> None:
    """Move a course in the courses service (as an admin would after people enrolled)."""
    response = courses_app.test_client().patch(
        f"/courses/{course_id}",
        json={"start_date": iso(start), "end_date": iso(end)},
        headers=internal_headers("1", "admin"),
    )
    assert response.status_code == 200, response.get_json()


def enrol(client: FlaskClient, user_id: str, course_id: int, expect: int = 201) -> dict[str, Any]:
    response = client.post(
        "/enrolment", json={"course_id": course_id}, headers=user_headers(user_id)
    )
    assert response.status_code == expect, response.get_json()
    return response.get_json()


def pay(client: FlaskClient, user_id: str, enrolment_id: int) -> dict[str, Any]:
    response = client.patch(
        "/enrolment/paid", json={"enrolment_id": enrolment_id}, headers=user_headers(user_id)
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def wait_for(probe: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def enrol_concurrently(app: Flask, calls: list[tuple[str, int]]) -> list[int]:
    """``POST /enrolment`` for each (user, course) at once, released by one barrier;
    the statuses, in the order they finished."""
    return _at_once(
        app,
        [("POST", "/enrolment", {"course_id": course_id}, user_id) for user_id, course_id in calls],
    )


def _at_once(app: Flask, calls: list[tuple[str, str, dict[str, Any], str]]) -> list[int]:
    statuses: list[int] = []
    barrier = threading.Barrier(len(calls))

    def call(method: str, path: str, body: dict[str, Any], user_id: str) -> None:
        client = app.test_client()
        barrier.wait()
        response = client.open(path, method=method, json=body, headers=user_headers(user_id))
        statuses.append(response.status_code)

    threads = [threading.Thread(target=call, args=args) for args in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def pay_concurrently(app: Flask, user_id: str, enrolment_id: int, times: int) -> list[int]:
    """The same ``PATCH /enrolment/paid`` sent ``times`` times at once (a double click)."""
    call = ("PATCH", "/enrolment/paid", {"enrolment_id": enrolment_id}, user_id)
    return _at_once(app, [call] * times)
