"""The SQL mail outbox: requests and workers add mail in their own transaction;
``common.outbox.OutboxRelay`` drains it through ``SmtpMailer``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from common.db import Database
from common.mail import OutgoingMail
from common.outbox import Claimed
from enrolments.adapters.clock import moment
from enrolments.adapters.tables import MailRecord


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

    def __init__(self, database: Database, lease_seconds: float = 120.0) -> None:
        self.database = database
        self.lease_seconds = lease_seconds

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
        self._set(item_id, status="sent", locked_until=None, last_error=None)

    def mark_retry(self, item_id: str, delay_seconds: float, error: str) -> None:
        self._set(
            item_id, available_at=moment(delay_seconds), locked_until=None, last_error=error[:2000]
        )

    def mark_failed(self, item_id: str, error: str) -> None:
        self._set(item_id, status="failed", locked_until=None, last_error=error[:2000])

    def _set(self, item_id: str, **values: object) -> None:
        with self.database.transaction() as session:
            session.execute(
                update(MailRecord).where(MailRecord.id == int(item_id)).values(**values)
            )
