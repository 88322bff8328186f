"""The whole platform as real processes, driven only through nginx's port."""

from __future__ import annotations

import email
import email.policy
import re
import secrets
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from devtools.devservers import MariaDB, Redis
from devtools.launcher import Platform, PlatformConfig, Ports
from devtools.smtp_sink import message_text

ADMIN = {
    "email": "admin@e2e.example.org",
    "username": "e2e-admin",
    "password": "correct horse battery staple e2e",
}


@pytest.fixture(scope="session")
def platform(
    mariadb: MariaDB, redis_server: Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    config = PlatformConfig(
        ports=Ports.free(),
        run_dir=Path(tmp_path_factory.mktemp("platform")),
        internal_api_key=secrets.token_urlsafe(40),
        jwt_secret_key=secrets.token_urlsafe(40),
        totp_encryption_key=secrets.token_urlsafe(40),
        fakturownia_api_token=secrets.token_urlsafe(20),
        courses_database_url=mariadb.create_database("e2e_courses"),
        enrolments_database_url=mariadb.create_database("e2e_enrolments"),
        learning_database_url=mariadb.create_database("e2e_learning"),
        redis_url=redis_server.url,
        admin=ADMIN,
        environment="development",
        # Every journey comes from 127.0.0.1; the per-IP limits have their own gateway tests.
        extra_env={
            "gateway": {"AUTH_RATE_LIMIT": "1000/minute"},
        },
    )
    running = Platform(config).start(require_nginx=True)
    yield running
    running.stop()


@pytest.fixture
def api(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=platform.url, timeout=15) as client:
        yield client


class Mailbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def messages_to(self, address: str) -> list[EmailMessage]:
        found = []
        for path in sorted(self.directory.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            if address.lower() in str(message["To"]).lower():
                found.append(message)
        return found

    def wait_for(self, address: str, pattern: str, timeout: float = 20) -> re.Match[str]:
        """The first match of ``pattern`` in the newest mail to ``address`` that has it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in reversed(self.messages_to(address)):
                match = re.search(pattern, message_text(message))
                if match:
                    return match
            time.sleep(0.1)
        raise AssertionError(f"no mail to {address} matching {pattern!r}")


@pytest.fixture
def mailbox(platform: Platform) -> Mailbox:
    return Mailbox(platform.config.run_dir / "mail")
