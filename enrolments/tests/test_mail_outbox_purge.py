"""The enrolments mail outbox drops sent and failed mail after MAIL_RETENTION_DAYS, in
bounded batches, from the workers' periodic loop (SQL has no TTL index)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import insert, select, text

from common.mail import OutgoingMail
from enrolments import create_app
from enrolments.adapters.clock import moment
from enrolments.adapters.mail_outbox import add_mail
from enrolments.adapters.tables import MailRecord
from enrolments.domain import MAIL_PURGE_JOB
from enrolments.testing import EnrolmentsEnv

pytestmark = pytest.mark.usefixtures("enrolments_db")


def mail_row(status: str, finished_days_ago: float | None, created_days_ago: float = 60) -> dict:
    now = moment()
    return {
        "recipient": f"{status}@example.com",
        "subject": "Hello",
        "body_text": "Hi",
        "status": status,
        "attempts": 1,
        "available_at": now - timedelta(days=created_days_ago),
        "created_at": now - timedelta(days=created_days_ago),
        "finished_at": None
        if finished_days_ago is None
        else now - timedelta(days=finished_days_ago),
    }


def stored(app: Flask) -> list[tuple[str, str]]:
    with app.extensions["container"].database().transaction() as session:
        rows = session.execute(select(MailRecord.status, MailRecord.recipient)).all()
    return sorted((status, recipient) for status, recipient in rows)


def test_sent_and_failed_mail_goes_after_the_retention_in_bounded_batches(enrolments_app):
    container = enrolments_app.extensions["container"]
    rows = (
        [mail_row("sent", 31) for _ in range(7)]
        + [mail_row("failed", 40) for _ in range(3)]
        + [mail_row("sent", 29), mail_row("failed", 1)]
        + [mail_row("pending", None) for _ in range(2)]  # never finished: never dropped
    )
    with container.database().transaction() as session:
        session.execute(insert(MailRecord), rows)
    outbox = container.mail_outbox()
    assert outbox.retention_days == 30
    # One run deletes at most max_batches × batch_size rows, each batch on its own.
    assert outbox.purge(batch_size=3, max_batches=2) == 6
    assert outbox.purge(batch_size=3, max_batches=2) == 4
    assert outbox.purge(batch_size=3, max_batches=2) == 0
    assert stored(enrolments_app) == [
        ("failed", "failed@example.com"),
        ("pending", "pending@example.com"),
        ("pending", "pending@example.com"),
        ("sent", "sent@example.com"),
    ]


def test_finishing_a_mail_stamps_when_and_the_workers_purge_it(enrolments_app, enrolments_env):
    container = enrolments_app.extensions["container"]
    outbox = container.mail_outbox()
    with container.database().transaction() as session:
        for n in range(2):
            add_mail(session, OutgoingMail(to=f"u{n}@example.com", subject="S", text="T"))
    first, second = outbox.claim_due(2)
    before = moment()
    outbox.mark_done(first.id)
    outbox.mark_failed(second.id, "refused")
    with container.database().transaction() as session:
        finished = session.scalars(select(MailRecord.finished_at)).all()
    assert all(stamp is not None and stamp >= before for stamp in finished)
    # The workers' periodic loop runs the purge, with MAIL_RETENTION_DAYS and its interval.
    app = create_app(enrolments_env.settings(mail_retention_days=0, mail_purge_interval=0.05))
    try:
        [purge] = [
            job for job in app.extensions["container"].daily_jobs() if job.name == MAIL_PURGE_JOB
        ]
        assert purge.interval == 0.05
        purge.start()
        deadline = moment() + timedelta(seconds=10)
        while stored(enrolments_app) and moment() < deadline:
            time.sleep(0.05)
        purge.stop()
    finally:
        app.extensions["container"].database().dispose()
    assert stored(enrolments_app) == []


def test_the_migration_stamps_mail_finished_before_it(
    enrolments_env: EnrolmentsEnv, tmp_path: Path
):
    app = create_app(enrolments_env.settings(database_url=f"sqlite:///{tmp_path}/old.db"))
    database = app.extensions["container"].database()
    with app.app_context():
        upgrade(revision="0001")
    created = datetime(2026, 1, 1, 12, 0, 0)
    with database.engine.begin() as connection:
        for status in ("sent", "failed", "pending"):
            connection.execute(
                text(
                    "INSERT INTO mail_outbox (recipient, subject, body_text, status, attempts,"
                    " available_at, created_at) VALUES (:r, 's', 't', :s, 1, :c, :c)"
                ),
                {"r": f"{status}@example.com", "s": status, "c": created},
            )
    with app.app_context():
        upgrade()
    with database.engine.begin() as connection:
        rows = dict(connection.execute(text("SELECT status, finished_at FROM mail_outbox")).all())
    assert rows["pending"] is None
    assert {str(rows["sent"])[:19], str(rows["failed"])[:19]} == {"2026-01-01 12:00:00"}
    database.dispose()
