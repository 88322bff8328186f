"""pytest fixtures for the users service, usable by every test tier.

Runs on mongomock unless ``MONGO_URL`` is set, in which case the same tests use
that MongoDB (database ``users_test``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from flask import Flask
from flask.testing import FlaskClient

from common.mail import MailSettings
from devtools.helpers import TEST_INTERNAL_KEY, internal_headers
from devtools.live import LiveServer
from devtools.smtp_sink import SmtpSink
from users import create_app
from users.domain import public_user
from users.service import UserService
from users.settings import UsersSettings

TEST_TOTP_KEY = "test-totp-encryption-key-0123456789abcdefghij"
TEST_FRONTEND_URL = "https://frontend.course-platform.test"
PASSWORD = "correct horse battery staple"
ANON = internal_headers()


def users_settings(**overrides: Any) -> UsersSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "internal_api_key": TEST_INTERNAL_KEY,
        "totp_encryption_key": TEST_TOTP_KEY,
        "mongo_url": os.environ.get("MONGO_URL", ""),
        "mongo_db": "users_test",
        "frontend_url": TEST_FRONTEND_URL,
        "mail_relay_poll_seconds": 0.05,
        "mail_relay_backoff_base": 0.05,
        "mail_relay_max_attempts": 1000,
    }
    values.update(overrides)
    return UsersSettings(**values)


def user_service(app: Flask) -> UserService:
    return app.extensions["container"].user_service()


def create_active_user(
    app: Flask, *, username: str, email: str, password: str, role: str = "user"
) -> dict[str, Any]:
    """An activated account made through the service layer (no mail, no activation)."""
    doc = user_service(app).create_active_user(
        username=username,
        email=email,
        password=password,
        role=role,
        first_name=username.capitalize(),
        last_name="Tester",
        gender="Other",
    )
    return public_user(doc)


@pytest.fixture(scope="session")
def users_app(smtp_sink_session: SmtpSink) -> Iterator[Flask]:
    mail = MailSettings(server="127.0.0.1", port=smtp_sink_session.port, timeout=5.0)
    app = create_app(users_settings(), mail)
    yield app
    container = app.extensions["container"]
    container.mail_relay().stop()
    container.mongo_client().close()


@pytest.fixture
def users_db(users_app: Flask) -> None:
    """Each test starts with empty collections (indexes stay)."""
    database = users_app.extensions["container"].database()
    for name in ("users", "outbox", "guards"):
        database[name].delete_many({})


@pytest.fixture
def users_client(users_app: Flask, users_db: None) -> FlaskClient:
    return users_app.test_client()


@pytest.fixture
def users_clock(users_app: Flask, monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Replace the service's clock for one test."""
    fake = Clock()
    monkeypatch.setattr(user_service(users_app), "clock", fake)
    return fake


@pytest.fixture(scope="session")
def users_server(users_app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(users_app).start()
    yield server
    server.stop()


# -- helpers for tests of every tier ---------------------------------------------------------


class Clock:
    """An injectable clock: tests move time instead of sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def user_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "username": "johndoe",
        "first_name": "John",
        "last_name": "Doe",
        "email": "john@example.com",
        "password": PASSWORD,
        "password_confirmation": PASSWORD,
        "gender": "Male",
    }
    body.update(overrides)
    return body


def register(client: FlaskClient, **overrides: Any) -> dict[str, Any]:
    response = client.post("/users", json=user_body(**overrides), headers=ANON)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def settle_jobs(app: Flask, timeout: float = 10.0) -> None:
    """Wait until the mail relay has run every stored account job (forgot, resend)."""
    outbox_store = app.extensions["container"].outbox()
    deadline = time.monotonic() + timeout
    while outbox_store.pending_jobs():
        assert time.monotonic() < deadline, "the relay did not run the account jobs"
        time.sleep(0.01)


def outbox(app: Flask, to: str) -> list[dict[str, Any]]:
    """Mails stored for ``to``, oldest first (read straight from the outbox), once the
    relay has run the account jobs that produce mail."""
    settle_jobs(app)
    mails = app.extensions["container"].outbox().mails_to(to)
    return [
        {"to": mail.to, "subject": mail.subject, "text": mail.text, "html": mail.html}
        for mail in mails
    ]


def activation_code(app: Flask, to: str) -> str:
    mails = outbox(app, to)
    assert mails, f"no mail for {to}"
    match = re.search(r"activation code is (\d{6})", mails[-1]["text"])
    assert match
    return match.group(1)


def reset_token(app: Flask, to: str) -> str:
    mails = outbox(app, to)
    assert mails, f"no mail for {to}"
    link = re.search(r"https?://\S+", mails[-1]["text"])
    assert link
    return parse_qs(urlparse(link.group(0)).query)["token"][0]


def totp_secret(provisioning_uri: str) -> str:
    return parse_qs(urlparse(provisioning_uri).query)["secret"][0]


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}
