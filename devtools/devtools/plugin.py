"""pytest plugin: real MariaDB, Redis, nginx and SMTP servers and the Fakturownia
stand-in for the suite.

Each server starts once per test session on a free port with a throwaway data
directory. A missing binary fails the run loudly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.devservers import MariaDB, Redis
from devtools.sandbox import Sandbox, start_sandbox
from devtools.smtp_sink import SmtpSink


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    server = MariaDB(tmp_path_factory.mktemp("mariadb")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    server = Redis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp_sink_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpSink]:
    sink = SmtpSink(Path(tmp_path_factory.mktemp("mail"))).start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp_sink(smtp_sink_session: SmtpSink) -> SmtpSink:
    """The session's sink, emptied for this test."""
    smtp_sink_session.clear()
    smtp_sink_session.refusing = False
    return smtp_sink_session


@pytest.fixture(scope="session")
def sandbox_session() -> Iterator[Sandbox]:
    sandbox = start_sandbox()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sandbox(sandbox_session: Sandbox) -> Sandbox:
    """The session's stand-in with no invoices and no faults."""
    sandbox_session.reset()
    return sandbox_session
