"""Enrolment rules, independent of HTTP and storage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from common.errors import ApiError, Conflict, Forbidden, NotFound
from common.mail import OutgoingMail
from contracts.courses import ARCHIVED, DRAFT  # noqa: F401 - Course.status values

# Enrolment.status
ACTIVE, CANCELLED, COMPLETED, EXPIRED = "active", "cancelled", "completed", "expired"
# Statuses that hold the (user, course) pair and a seat.
LIVE_STATUSES = (ACTIVE, COMPLETED)
# Enrolment.payment_status
PENDING, PAID, FAILED = "pending", "paid", "failed"
# Enrolment.invoice_status
INVOICE_NONE, INVOICE_PENDING, INVOICE_ISSUED, INVOICE_FAILED = (
    "none",
    "pending",
    "issued",
    "failed",
)

EXPIRY_JOB = "expire_enrolments"
MAIL_PURGE_JOB = "purge_mail"
EXPIRY_REPORT_CAP = 1000


def live_key(user_id: str, course_id: int) -> str:
    """Set while an enrolment is live; its unique index allows one live enrolment per pair."""
    return f"{user_id}:{course_id}"


def invoice_oid(enrolment_id: int) -> str:
    """Our id of the invoice at Fakturownia: a retry can never create a second one."""
    return f"enrolment-{enrolment_id}"


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def may_learn(payment_status: str, price: Decimal) -> bool:
    """A live enrolment gives access to the course's material once paid, or at once
    when the course was free."""
    return payment_status == PAID or price == 0


@dataclass(frozen=True)
class User:
    id: str
    email: str
    username: str
    first_name: str
    last_name: str
    is_active: bool

    @property
    def display_name(self) -> str:
        full = f"{self.first_name} {self.last_name}".strip()
        return full or self.username


@dataclass(frozen=True)
class Course:
    id: int
    name: str
    price: Decimal
    currency: str
    max_participants: int | None
    start_date: datetime
    end_date: datetime
    status: str  # draft | published | archived (contracts.courses)


@dataclass(frozen=True)
class Page:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


@dataclass(frozen=True)
class ExpiryReport:
    expired: int
    enrolment_ids: list[int]

    @property
    def truncated(self) -> bool:
        return self.expired > len(self.enrolment_ids)


def enrolment_mail(
    email: str, name: str, course_name: str, price: str, currency: str
) -> OutgoingMail:
    return OutgoingMail(
        to=email,
        subject=f"You are enrolled: {course_name}",
        text=(
            f"Hello {name},\n\nyou are enrolled in {course_name}.\n"
            f"Price: {price} {currency}. Mark the enrolment as paid once you have paid.\n"
        ),
    )


def payment_mail(
    email: str, name: str, course_name: str, price: str, currency: str, number: str, url: str
) -> OutgoingMail:
    return OutgoingMail(
        to=email,
        subject=f"Payment received: {course_name}",
        text=(
            f"Hello {name},\n\nwe received your payment of {price} {currency} for "
            f"{course_name}.\nYour invoice {number}: {url}\n"
        ),
    )


class EnrolmentNotFound(NotFound):
    code, message = "enrolment_not_found", "The enrolment was not found."


class UserNotFound(NotFound):
    code, message = "user_not_found", "The user was not found."


class CourseNotFound(NotFound):
    code, message = "course_not_found", "The course was not found."


class UserInactive(Conflict):
    code, message = "user_inactive", "The user account is not active."


class CourseArchived(Conflict):
    code, message = "course_archived", "The course is archived and takes no new enrolments."


class CourseEnded(Conflict):
    code, message = "course_ended", "The course has already ended."


class CourseFull(Conflict):
    code, message = "course_full", "The course has no free places."


class AlreadyEnrolled(Conflict):
    code, message = "already_enrolled", "The user is already enrolled in this course."


class AlreadyPaid(Conflict):
    code, message = "already_paid", "The enrolment is already paid."


class NotActive(Conflict):
    code, message = "enrolment_not_active", "The enrolment is not active."


class PaidCannotBeCancelled(Conflict):
    code, message = "enrolment_paid", "A paid enrolment cannot be cancelled."


class InvoicePending(Conflict):
    code, message = "invoice_pending", "The invoice of this enrolment is still being issued."


class InvoiceNotFailed(Conflict):
    code, message = "invoice_not_failed", "Only a failed invoice can be retried."


class EnrolForOthers(Forbidden):
    code, message = "forbidden", "Only an admin may enrol another user."


class UpstreamError(ApiError):
    status, code, message = 502, "upstream_error", "A service answered unexpectedly."
