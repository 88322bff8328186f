"""The SQL mail outbox: requests and workers add mail in their own transaction;
``common.outbox.OutboxRelay`` drains it through ``SmtpMailer``.

Sent and failed mail is kept ``MAIL_RETENTION_DAYS`` after it finished, then deleted by
:meth:`SqlMailOutbox.purge`, which the workers run periodically (SQL has no TTL index,
unlike the users service's MongoDB outbox): a bounded delete in batches of
``PURGE_BATCH`` rows, each its own short transaction, so it never holds many locks or
runs long however much is due; what is left waits for the next run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from common.db import Database
from common.mail import OutgoingMail
from common.outbox import Claimed
from enrolments.adapters.clock import moment
from enrolments.adapters.tables import MailRecord

PURGE_BATCH = 500
PURGE_MAX_BATCHES = 20  # at most 10,000 rows a run
FINISHED = ("sent", "failed")


def add_mail(session: Session, mail: OutgoingMail) -> None:
    session.add(
        MailRecord(
            recipient=mail.to,
            subject=mail.subject,
            body_text=mail.text,
            body_html=mail.html,
            status="pending",
            attempts=0,
            available_at=moment(),
        )
    )


class SqlMailOutbox:
    """An ``OutboxStore[OutgoingMail]``: claimed rows are leased, so a crashed
    process's mail is sent by another after the lease runs out."""

    def __init__(
        self, database: Database, lease_seconds: float = 120.0, retention_days: float = 30.0
    ) -> None:
        self.database = database
        self.lease_seconds = lease_seconds
        self.retention_days = retention_days

    def claim_due(self, limit: int) -> Sequence[Claimed[OutgoingMail]]:
        now = moment()
        with self.database.transaction() as session:
            query = (
                select(MailRecord)
                .where(
                    MailRecord.status == "pending",
                    MailRecord.available_at <= now,
                    or_(MailRecord.locked_until.is_(None), MailRecord.locked_until < now),
                )
                .order_by(MailRecord.id)
                .limit(limit)
            )
            if not self.database.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            claimed = []
            for record in session.scalars(query).all():
                record.attempts += 1
                record.locked_until = moment(self.lease_seconds)
                claimed.append(
                    Claimed(
                        id=str(record.id),
                        attempts=record.attempts,
                        payload=OutgoingMail(
                            to=record.recipient,
                            subject=record.subject,
                            text=record.body_text,
                            html=record.body_html,
                        ),
                    )
                )
        return claimed

    def mark_done(self, item_id: str) -> None:
        self._set(item_id, status="sent", locked_until=None, last_error=None, finished_at=moment())

    def mark_retry(self, item_id: str, delay_seconds: float, error: str) -> None:
        self._set(
            item_id, available_at=moment(delay_seconds), locked_until=None, last_error=error[:2000]
        )

    def mark_failed(self, item_id: str, error: str) -> None:
        self._set(
            item_id,
            status="failed",
            locked_until=None,
            last_error=error[:2000],
            finished_at=moment(),
        )

    def purge(self, *, batch_size: int = PURGE_BATCH, max_batches: int = PURGE_MAX_BATCHES) -> int:
        """Delete sent and failed mail that finished more than ``retention_days`` ago,
        oldest first, at most ``batch_size`` rows per transaction and ``max_batches``
        transactions per run. Pending mail is never touched. Returns the rows deleted.
        Safe to run in several processes at once: a row another one deleted is skipped."""
        cutoff = moment() - timedelta(days=self.retention_days)
        deleted = 0
        for _ in range(max_batches):
            with self.database.transaction() as session:
                ids = session.scalars(
                    select(MailRecord.id)
                    .where(MailRecord.finished_at < cutoff, MailRecord.status.in_(FINISHED))
                    .order_by(MailRecord.finished_at)
                    .limit(batch_size)
                ).all()
                if ids:
                    result = session.execute(
                        delete(MailRecord).where(
                            MailRecord.id.in_(ids),
                            MailRecord.finished_at < cutoff,
                            MailRecord.status.in_(FINISHED),
                        )
                    )
                    deleted += int(getattr(result, "rowcount", 0))
            if len(ids) < batch_size:
                break
        return deleted

    def _set(self, item_id: str, **values: object) -> None:
        with self.database.transaction() as session:
            session.execute(
                update(MailRecord).where(MailRecord.id == int(item_id)).values(**values)
            )
