"""Enrolment business logic and the invoice processing step: no Flask, no sessions."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from common.errors import UpstreamUnavailable
from common.identity import Caller
from common.mail import OutgoingMail
from common.outbox import backoff_delay
from common.timeutil import from_db, utcnow
from enrolments.adapters.fakturownia import (
    FakturowniaClient,
    FakturowniaRejected,
    FakturowniaUnauthorized,
    FakturowniaUnavailable,
    InvoiceRequest,
    IssuedInvoice,
    OidTaken,
)
from enrolments.adapters.invoice_outbox import InvoiceJob, InvoiceOutbox
from enrolments.adapters.repository import EnrolmentRepository
from enrolments.adapters.tables import EnrolmentRecord
from enrolments.adapters.upstreams import CoursesClient, UsersClient
from enrolments.domain import (
    ACTIVE,
    ARCHIVED,
    DRAFT,
    EXPIRY_JOB,
    CourseArchived,
    CourseEnded,
    CourseNotFound,
    EnrolForOthers,
    ExpiryReport,
    Page,
    UpstreamError,
    UserInactive,
    enrolment_mail,
    invoice_oid,
    money,
    payment_mail,
)

log = logging.getLogger(__name__)


class EnrolmentService:
    def __init__(
        self,
        repository: EnrolmentRepository,
        users: UsersClient,
        courses: CoursesClient,
        on_work: Callable[[], None] = lambda: None,
    ) -> None:
        self.repository = repository
        self.users = users
        self.courses = courses
        # Wakes the in-process workers when a request stores work for them.
        self.on_work = on_work

    def enrol(self, caller: Caller, course_id: int, user_id: str | None = None) -> EnrolmentRecord:
        if user_id is not None and user_id != caller.user_id and not caller.is_admin:
            raise EnrolForOthers()
        user = self.users.get(user_id or caller.user_id)
        if not user.is_active:
            raise UserInactive()
        course = self.courses.get(course_id)
        if course.status == DRAFT:
            raise CourseNotFound()  # not published: it does not exist for learners yet
        if course.status == ARCHIVED:
            raise CourseArchived()
        if course.end_date <= utcnow():
            raise CourseEnded()
        mail = enrolment_mail(
            user.email, user.display_name, course.name, money(course.price), course.currency
        )
        record = self.repository.enrol(user, course, mail)
        self.on_work()
        return record

    @staticmethod
    def _owner(caller: Caller) -> str | None:
        return None if caller.is_admin else caller.user_id

    def mark_paid(self, caller: Caller, enrolment_id: int) -> EnrolmentRecord:
        """An ended course is not paid for (409 ``course_ended``), judged on the course's
        end date now, not on the copy the expiry job last synced: between the end and
        the next expiry run the enrolment is still active."""
        owner = self._owner(caller)
        enrolled = self.repository.get(enrolment_id, owner)
        try:
            end_date = self.courses.get(enrolled.course_id).end_date
        except CourseNotFound:
            end_date = from_db(enrolled.course_end_date)  # deleted: its last known end date
        record = self.repository.mark_paid(enrolment_id, owner, course_end=end_date, now=utcnow())
        self.on_work()
        return record

    def get(self, enrolment_id: int, owner: str | None = None) -> EnrolmentRecord:
        return self.repository.get(enrolment_id, owner)

    def details(self, caller: Caller, enrolment_id: int) -> EnrolmentRecord:
        return self.repository.get(enrolment_id, self._owner(caller))

    def active(self, page: Page, course_id: int | None = None) -> tuple[list[EnrolmentRecord], int]:
        return self.repository.search(page, status=ACTIVE, course_id=course_id)

    def mine(
        self, caller: Caller, page: Page, status: str | None = None
    ) -> tuple[list[EnrolmentRecord], int]:
        return self.repository.search(page, user_id=caller.user_id, status=status)

    def cancel(self, caller: Caller, enrolment_id: int) -> EnrolmentRecord:
        return self.repository.cancel(enrolment_id, self._owner(caller))

    def delete(self, enrolment_id: int) -> None:
        self.repository.delete(enrolment_id)

    def retry_invoice(self, enrolment_id: int) -> EnrolmentRecord:
        record = self.repository.retry_invoice(enrolment_id)
        self.on_work()
        return record

    def expire(self) -> ExpiryReport:
        if not self._sync_course_end_dates():
            raise UpstreamUnavailable()  # expiring on stale end dates cannot be undone
        return self.repository.expire(utcnow())

    def expire_daily(self, today: date | None = None) -> ExpiryReport | None:
        """The scheduled run: at most once per UTC day across every process."""
        now = utcnow()
        day = today or now.date()
        if self.repository.has_run(EXPIRY_JOB, day) or not self._sync_course_end_dates():
            return None  # done already, or the courses service is away: the next check retries
        report = self.repository.expire_once_for_day(EXPIRY_JOB, day, now)
        if report is not None:
            log.info("daily_expiry_ran", extra={"expired": report.expired})
        return report

    def _sync_course_end_dates(self) -> bool:
        """A course may be rescheduled after people enrol: expiry follows its end date
        now, not the copy taken at enrolment. The courses are read in bulk (one call per
        500 ids). False when the courses service is away."""
        course_ids = self.repository.live_course_ids()
        try:
            courses = self.courses.get_many(course_ids)
        except (UpstreamUnavailable, UpstreamError):
            log.warning("expiry_postponed", extra={"courses": len(course_ids)})
            return False
        for course_id in course_ids:
            course = courses.get(course_id)
            if course is not None:  # a deleted course: its last known end date stands
                self.repository.set_course_end_date(course_id, course.end_date)
        return True


@dataclass(frozen=True)
class RetryPolicy:
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    max_attempts: int = 40

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        delay = backoff_delay(attempts, self.backoff_base, self.backoff_cap)
        return max(delay, retry_after or 0.0)


def _day(value: datetime | None) -> date:
    return from_db(value).date() if value is not None else utcnow().date()


def invoice_request(record: EnrolmentRecord) -> InvoiceRequest:
    paid = _day(record.paid_at)
    return InvoiceRequest(
        oid=invoice_oid(record.id),
        buyer_name=record.buyer_name,
        buyer_email=record.buyer_email,
        position_name=record.course_name,
        total_price_gross=record.price,
        currency=record.currency,
        sell_date=paid,
        issue_date=utcnow().date(),
        paid_date=paid,
    )


def payment_confirmation(record: EnrolmentRecord, invoice: IssuedInvoice) -> OutgoingMail:
    return payment_mail(
        record.buyer_email,
        record.buyer_name,
        record.course_name,
        money(record.price),
        record.currency,
        invoice.number,
        invoice.view_url,
    )


class InvoiceProcessor:
    """One attempt at one claimed job: create the invoice (or find the one an
    earlier attempt created), then record it; or schedule a retry; or fail it."""

    def __init__(
        self, outbox: InvoiceOutbox, fakturownia: FakturowniaClient, policy: RetryPolicy
    ) -> None:
        self.outbox = outbox
        self.fakturownia = fakturownia
        self.policy = policy

    def process(self, job: InvoiceJob) -> str:
        try:
            return self._attempt(job)
        except Exception as exc:
            # Anything unforeseen (a value the database refuses, an answer we cannot
            # parse) still counts as an attempt, so max_attempts ends it as "failed"
            # for an admin instead of a job retried forever behind an expired lease.
            log.exception("invoice_attempt_crashed", extra={"enrolment": job.enrolment_id})
            return self._retry(job, f"unexpected {type(exc).__name__} (see the logs)", None)

    def _attempt(self, job: InvoiceJob) -> str:
        record = self.outbox.snapshot(job.enrolment_id)
        if record is None or record.invoice_id is not None:
            # Deleted, or recorded by an earlier attempt that died before closing the job.
            if record is not None:
                self.outbox.record_issued(
                    job,
                    IssuedInvoice(
                        record.invoice_id,  # type: ignore[arg-type]
                        record.invoice_number or "",
                        record.invoice_view_url or "",
                    ),
                    payment_confirmation,
                )
            return "done"
        request = invoice_request(record)
        try:
            try:
                invoice = self.fakturownia.create_invoice(request)
            except OidTaken:
                # An earlier attempt created it (and its answer was lost): adopt that one.
                found = self.fakturownia.find_by_oid(request.oid)
                if found is None:
                    raise FakturowniaUnavailable("oid taken but not found yet") from None
                invoice = found
        except FakturowniaUnavailable as exc:
            return self._retry(job, str(exc), exc.retry_after)
        except FakturowniaUnauthorized as exc:
            # Our token is wrong: retrying at the capped backoff picks up a fixed configuration.
            return self._retry(job, str(exc), None)
        except FakturowniaRejected as exc:
            log.warning("invoice_refused", extra={"enrolment": job.enrolment_id, "error": str(exc)})
            self.outbox.fail(job, str(exc))
            return "failed"
        self.outbox.record_issued(job, invoice, payment_confirmation)
        log.info(
            "invoice_issued",
            extra={"enrolment": job.enrolment_id, "invoice": invoice.id, "attempts": job.attempts},
        )
        return "issued"

    def _retry(self, job: InvoiceJob, error: str, retry_after: float | None) -> str:
        if job.attempts >= self.policy.max_attempts:
            log.error("invoice_gave_up", extra={"enrolment": job.enrolment_id, "error": error})
            self.outbox.fail(job, f"gave up after {job.attempts} attempts: {error}")
            return "failed"
        delay = self.policy.delay(job.attempts, retry_after)
        log.info(
            "invoice_retry",
            extra={
                "enrolment": job.enrolment_id,
                "attempts": job.attempts,
                "delay": round(delay, 3),
            },
        )
        self.outbox.retry_later(job, delay, error)
        return "retry"
