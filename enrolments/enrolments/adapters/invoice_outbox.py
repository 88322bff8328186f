"""The invoice outbox: rows written with the payment, claimed by the worker pool.

Claims use ``SELECT … FOR UPDATE SKIP LOCKED`` (two processes never take the
same row) and leave a lease (``locked_until`` + ``lease_token``): a process
killed at any moment leaves its rows to be claimed again once the lease ends.
The Fakturownia ``oid`` makes the second attempt find the first's invoice
instead of creating another.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import or_, select, update

from common.db import Database
from common.mail import OutgoingMail
from enrolments.adapters.clock import moment
from enrolments.adapters.fakturownia import IssuedInvoice
from enrolments.adapters.mail_outbox import add_mail
from enrolments.adapters.tables import EnrolmentRecord, InvoiceJobRecord
from enrolments.domain import INVOICE_FAILED, INVOICE_ISSUED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InvoiceJob:
    id: int
    enrolment_id: int
    attempts: int
    lease_token: str


class InvoiceOutbox:
    def __init__(self, database: Database, lease_seconds: float = 120.0) -> None:
        self.database = database
        self.lease_seconds = lease_seconds

    def claim(self, limit: int = 1) -> list[InvoiceJob]:
        now = moment()
        due = (
            select(InvoiceJobRecord)
            .where(
                InvoiceJobRecord.status == "pending",
                InvoiceJobRecord.available_at <= now,
                or_(InvoiceJobRecord.locked_until.is_(None), InvoiceJobRecord.locked_until < now),
            )
            .order_by(InvoiceJobRecord.available_at, InvoiceJobRecord.id)
            .limit(limit)
        )
        if not self.database.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        jobs = []
        with self.database.transaction() as session:
            for record in session.scalars(due).all():
                token = uuid.uuid4().hex
                if self.database.is_sqlite:
                    # No row locks: the conditional update decides who got the row.
                    claimed = session.execute(
                        update(InvoiceJobRecord)
                        .where(
                            InvoiceJobRecord.id == record.id,
                            InvoiceJobRecord.attempts == record.attempts,
                        )
                        .values(
                            attempts=record.attempts + 1,
                            locked_until=moment(self.lease_seconds),
                            lease_token=token,
                        )
                        .execution_options(synchronize_session=False)
                    )
                    if claimed.rowcount != 1:  # type: ignore[attr-defined]
                        continue
                    attempts = record.attempts + 1
                else:
                    record.attempts += 1
                    record.locked_until = moment(self.lease_seconds)
                    record.lease_token = token
                    attempts = record.attempts
                jobs.append(InvoiceJob(record.id, record.enrolment_id, attempts, token))
        return jobs

    def snapshot(self, enrolment_id: int) -> EnrolmentRecord | None:
        with self.database.transaction() as session:
            return session.get(EnrolmentRecord, enrolment_id)

    def record_issued(
        self,
        job: InvoiceJob,
        invoice: IssuedInvoice,
        confirmation: Callable[[EnrolmentRecord, IssuedInvoice], OutgoingMail],
    ) -> bool:
        """Store the invoice on the enrolment, queue the payment mail and close
        the job, in one transaction. Idempotent: a second recording of the same
        enrolment changes nothing and sends no second mail."""
        with self.database.transaction() as session:
            record = session.get(EnrolmentRecord, job.enrolment_id, with_for_update=True)
            session.execute(
                update(InvoiceJobRecord)
                .where(InvoiceJobRecord.id == job.id)
                .values(status="done", locked_until=None, lease_token=None, last_error=None)
            )
            if record is None:
                log.warning("invoice_for_missing_enrolment", extra={"enrolment": job.enrolment_id})
                return False
            if record.invoice_id is not None:
                if record.invoice_id != invoice.id:
                    log.error(
                        "invoice_mismatch",
                        extra={
                            "enrolment": record.id,
                            "stored": record.invoice_id,
                            "got": invoice.id,
                        },
                    )
                return False
            record.invoice_id = invoice.id
            record.invoice_number = invoice.number
            record.invoice_view_url = invoice.view_url
            record.invoice_status = INVOICE_ISSUED
            record.invoice_error = None
            add_mail(session, confirmation(record, invoice))
            return True

    def retry_later(self, job: InvoiceJob, delay_seconds: float, error: str) -> None:
        with self.database.transaction() as session:
            session.execute(
                update(InvoiceJobRecord)
                .where(
                    InvoiceJobRecord.id == job.id,
                    InvoiceJobRecord.lease_token == job.lease_token,
                    InvoiceJobRecord.status == "pending",
                )
                .values(
                    available_at=moment(delay_seconds),
                    locked_until=None,
                    lease_token=None,
                    last_error=error[:2000],
                )
            )

    def fail(self, job: InvoiceJob, error: str) -> None:
        """Refused for good (e.g. 422): visible on the enrolment for an admin to retry."""
        with self.database.transaction() as session:
            changed = session.execute(
                update(InvoiceJobRecord)
                .where(
                    InvoiceJobRecord.id == job.id,
                    InvoiceJobRecord.lease_token == job.lease_token,
                    InvoiceJobRecord.status == "pending",
                )
                .values(
                    status="failed", locked_until=None, lease_token=None, last_error=error[:2000]
                )
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                return
            session.execute(
                update(EnrolmentRecord)
                .where(EnrolmentRecord.id == job.enrolment_id, EnrolmentRecord.invoice_id.is_(None))
                .values(invoice_status=INVOICE_FAILED, invoice_error=error[:2000])
            )

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func

        with self.database.transaction() as session:
            rows = session.execute(
                select(InvoiceJobRecord.status, func.count()).group_by(InvoiceJobRecord.status)
            ).all()
        return {str(status): int(count) for status, count in rows}
