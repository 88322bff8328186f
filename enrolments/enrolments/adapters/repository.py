"""Enrolment storage. Owns its transactions; the service never sees a session."""

from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.db import Database
from common.mail import OutgoingMail
from common.timeutil import db_now, to_db
from enrolments.adapters.clock import moment
from enrolments.adapters.mail_outbox import add_mail
from enrolments.adapters.tables import (
    CourseSeatRecord,
    EnrolmentRecord,
    InvoiceJobRecord,
    JobRunRecord,
)
from enrolments.domain import (
    ACTIVE,
    CANCELLED,
    EXPIRED,
    EXPIRY_REPORT_CAP,
    INVOICE_FAILED,
    INVOICE_PENDING,
    PAID,
    AlreadyEnrolled,
    AlreadyPaid,
    Course,
    CourseEnded,
    CourseFull,
    EnrolmentNotFound,
    ExpiryReport,
    InvoiceNotFailed,
    InvoicePending,
    NotActive,
    Page,
    PaidCannotBeCancelled,
    User,
    live_key,
)

EXPIRY_BATCH = 500


class EnrolmentRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    # --- enrol -------------------------------------------------------------

    def enrol(self, user: User, course: Course, confirmation: OutgoingMail) -> EnrolmentRecord:
        """Insert a live enrolment while holding the course's seat row lock, so
        two last-seat enrolments are serialised and exactly one wins."""
        self._ensure_seat_row(course.id)
        key = live_key(user.id, course.id)
        try:
            with self.database.transaction() as session:
                session.get(CourseSeatRecord, course.id, with_for_update=True)
                if session.scalar(
                    select(EnrolmentRecord.id).where(EnrolmentRecord.live_key == key)
                ):
                    raise AlreadyEnrolled()
                if course.max_participants is not None:
                    taken = session.scalar(
                        select(func.count())
                        .select_from(EnrolmentRecord)
                        .where(
                            EnrolmentRecord.course_id == course.id,
                            EnrolmentRecord.live_key.is_not(None),
                        )
                    )
                    if (taken or 0) >= course.max_participants:
                        raise CourseFull()
                record = EnrolmentRecord(
                    user_id=user.id,
                    course_id=course.id,
                    status=ACTIVE,
                    payment_status="pending",
                    live_key=key,
                    course_name=course.name[:64],
                    price=course.price,
                    currency=course.currency,
                    course_end_date=to_db(course.end_date),
                    buyer_name=user.display_name[:255],
                    buyer_email=user.email[:255],
                    invoice_status="none",
                )
                session.add(record)
                add_mail(session, confirmation)
                session.flush()
                return record
        except IntegrityError:
            raise AlreadyEnrolled() from None

    def _ensure_seat_row(self, course_id: int) -> None:
        with self.database.transaction() as session:
            if session.get(CourseSeatRecord, course_id) is not None:
                return
        try:
            with self.database.transaction() as session:
                session.add(CourseSeatRecord(course_id=course_id))
        except IntegrityError:
            pass  # created by a concurrent enrolment: exactly what we wanted

    # --- read --------------------------------------------------------------

    def get(self, enrolment_id: int, owner: str | None = None) -> EnrolmentRecord:
        with self.database.transaction() as session:
            record = session.get(EnrolmentRecord, enrolment_id)
        if record is None or (owner is not None and record.user_id != owner):
            raise EnrolmentNotFound()
        return record

    def search(
        self,
        page: Page,
        *,
        user_id: str | None = None,
        status: str | None = None,
        course_id: int | None = None,
    ) -> tuple[list[EnrolmentRecord], int]:
        statement = select(EnrolmentRecord)
        if user_id is not None:
            statement = statement.where(EnrolmentRecord.user_id == user_id)
        if status is not None:
            statement = statement.where(EnrolmentRecord.status == status)
        if course_id is not None:
            statement = statement.where(EnrolmentRecord.course_id == course_id)
        with self.database.transaction() as session:
            total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
            rows = session.scalars(
                statement.order_by(EnrolmentRecord.created_at.desc(), EnrolmentRecord.id.desc())
                .limit(page.per_page)
                .offset(page.offset)
            ).all()
        return list(rows), total

    # --- state changes -----------------------------------------------------

    def _locked(self, session: Session, enrolment_id: int, owner: str | None) -> EnrolmentRecord:
        record = session.get(EnrolmentRecord, enrolment_id, with_for_update=True)
        if record is None or (owner is not None and record.user_id != owner):
            raise EnrolmentNotFound()
        return record

    def mark_paid(
        self, enrolment_id: int, owner: str | None, *, course_end: datetime, now: datetime
    ) -> EnrolmentRecord:
        """The payment and the "invoice due" outbox row, in one transaction; refused
        once the course has ended (``course_end``, as the courses service says now)."""
        with self.database.transaction() as session:
            record = self._locked(session, enrolment_id, owner)
            if record.payment_status == PAID:
                raise AlreadyPaid()
            if record.status != ACTIVE:
                raise NotActive()
            if course_end <= now:
                raise CourseEnded()
            record.course_end_date = to_db(course_end)
            record.payment_status = PAID
            record.paid_at = db_now()
            record.invoice_status = INVOICE_PENDING
            record.invoice_error = None
            session.add(
                InvoiceJobRecord(
                    enrolment_id=record.id, status="pending", attempts=0, available_at=moment()
                )
            )
            session.flush()
            return record

    def cancel(self, enrolment_id: int, owner: str | None) -> EnrolmentRecord:
        with self.database.transaction() as session:
            record = self._locked(session, enrolment_id, owner)
            if record.payment_status == PAID:
                raise PaidCannotBeCancelled()
            if record.status != ACTIVE:
                raise NotActive()
            record.status = CANCELLED
            record.live_key = None
            session.flush()
            return record

    def delete(self, enrolment_id: int) -> None:
        with self.database.transaction() as session:
            record = self._locked(session, enrolment_id, None)
            if record.invoice_status == INVOICE_PENDING:
                raise InvoicePending()
            session.delete(record)

    def retry_invoice(self, enrolment_id: int) -> EnrolmentRecord:
        with self.database.transaction() as session:
            record = self._locked(session, enrolment_id, None)
            job = session.scalar(
                select(InvoiceJobRecord)
                .where(InvoiceJobRecord.enrolment_id == enrolment_id)
                .with_for_update()
            )
            if record.invoice_status != INVOICE_FAILED or job is None:
                raise InvoiceNotFailed()
            record.invoice_status = INVOICE_PENDING
            record.invoice_error = None
            job.status = "pending"
            job.attempts = 0
            job.available_at = moment()
            job.locked_until = None
            job.lease_token = None
            session.flush()
            return record

    # --- expiry ------------------------------------------------------------

    def expire(self, now: datetime) -> ExpiryReport:
        """Admin run: active enrolments of ended courses become expired."""
        expired, ids = 0, list[int]()
        while True:
            with self.database.transaction() as session:
                batch = self._expire_batch(session, now)
            expired += len(batch)
            ids.extend(batch[: max(0, EXPIRY_REPORT_CAP - len(ids))])
            if len(batch) < EXPIRY_BATCH:
                return ExpiryReport(expired=expired, enrolment_ids=ids)

    def expire_once_for_day(self, job: str, day: date, now: datetime) -> ExpiryReport | None:
        """Run the day's expiry unless another process has: the job_runs row is
        inserted in the same transaction as the expiry, so a concurrent runner
        blocks on its key and then fails, and a crashed run leaves no row."""
        try:
            with self.database.transaction() as session:
                session.add(JobRunRecord(job=job, run_on=day))
                session.flush()
                expired, ids = 0, list[int]()
                while True:
                    batch = self._expire_batch(session, now)
                    expired += len(batch)
                    ids.extend(batch[: max(0, EXPIRY_REPORT_CAP - len(ids))])
                    if len(batch) < EXPIRY_BATCH:
                        break
                run = session.get(JobRunRecord, (job, day))
                assert run is not None
                run.result = json.dumps({"expired": expired})
                return ExpiryReport(expired=expired, enrolment_ids=ids)
        except IntegrityError:
            return None

    @staticmethod
    def _expire_batch(session: Session, now: datetime) -> list[int]:
        records = session.scalars(
            select(EnrolmentRecord)
            .where(EnrolmentRecord.status == ACTIVE, EnrolmentRecord.course_end_date < to_db(now))
            .order_by(EnrolmentRecord.id)
            .limit(EXPIRY_BATCH)
            .with_for_update()
        ).all()
        for record in records:
            record.status = EXPIRED
            record.live_key = None
        session.flush()
        return [record.id for record in records]

    def live_course_ids(self) -> list[int]:
        """The courses that still have active enrolments."""
        with self.database.transaction() as session:
            query = select(EnrolmentRecord.course_id).where(EnrolmentRecord.status == ACTIVE)
            return list(session.scalars(query.distinct()))

    def set_course_end_date(self, course_id: int, end_date: datetime) -> int:
        """Bring the active enrolments' copy of a course's end date up to date."""
        stored = to_db(end_date)
        with self.database.transaction() as session:
            result = session.execute(
                update(EnrolmentRecord)
                .where(
                    EnrolmentRecord.course_id == course_id,
                    EnrolmentRecord.status == ACTIVE,
                    EnrolmentRecord.course_end_date != stored,
                )
                .values(course_end_date=stored)
            )
            return int(getattr(result, "rowcount", 0))

    def has_run(self, job: str, day: date) -> bool:
        with self.database.transaction() as session:
            return session.get(JobRunRecord, (job, day)) is not None

    def job_runs(self, job: str) -> list[date]:
        with self.database.transaction() as session:
            return list(session.scalars(select(JobRunRecord.run_on).where(JobRunRecord.job == job)))
