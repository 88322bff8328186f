"""The enrolments API: its request and response models."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictInt, field_serializer, model_validator

from common.timeutil import from_db
from common.validation import QuerySchema, Schema, WholeNumber

PositiveId = Annotated[StrictInt, Field(ge=1, le=2**63 - 1), WholeNumber]
UserId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Status = Literal["active", "cancelled", "completed", "expired"]
# The statuses of a live enrolment: it holds a seat and gives access to the course.
LiveStatus = Literal["active", "completed"]
PaymentStatus = Literal["pending", "paid", "failed"]
CourseIdParam = Annotated[int, Field(ge=1, le=2**63 - 1)]


class EnrolmentCreate(Schema):
    """Body of ``POST /api/enrolment``: the caller enrols themself; an admin may name a user."""

    course_id: PositiveId
    user_id: UserId | None = None


class MarkPaid(Schema):
    """Body of ``PATCH /api/enrolment/paid``."""

    enrolment_id: PositiveId


class PageQuery(QuerySchema):
    page: Annotated[int, Field(ge=1, le=100_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=100)] = 20


class ActiveQuery(PageQuery):
    """Query of ``GET /api/enrolment/active``."""

    course_id: CourseIdParam | None = None


class MineQuery(PageQuery):
    """Query of ``GET /api/enrolment/mine``."""

    status: Status | None = None


class InvoiceOut(BaseModel):
    id: int
    number: str
    view_url: str


class EnrolmentOut(BaseModel):
    id: int
    user_id: str
    course_id: int
    course_name: str
    status: str
    payment_status: str
    price: Decimal
    currency: str
    course_end_date: datetime
    paid_at: datetime | None
    invoice_status: str
    invoice: InvoiceOut | None = None
    invoice_error: str | None
    created_at: datetime
    updated_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _invoice_from_record(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return data
        values = {name: getattr(data, name) for name in cls.model_fields if name != "invoice"}
        if getattr(data, "invoice_id", None) is not None:
            values["invoice"] = InvoiceOut(
                id=data.invoice_id,
                number=data.invoice_number or "",
                view_url=data.invoice_view_url or "",
            )
        return values

    @field_serializer("price")
    def _price_as_string(self, price: Decimal) -> str:
        return f"{price:.2f}"

    @field_serializer("course_end_date", "paid_at", "created_at", "updated_at")
    def _as_utc(self, value: datetime | None) -> str | None:
        return from_db(value).isoformat() if value is not None else None


class EnrolmentList(BaseModel):
    enrolments: list[EnrolmentOut]
    page: int
    per_page: int
    total: int


class ExpiryOut(BaseModel):
    expired: int
    enrolment_ids: list[int]
    truncated: bool


# -- internal: what the learning service asks (the internal key, no caller identity) ----------


class AccessQuery(QuerySchema):
    """Query of ``GET /internal/enrolments/access``."""

    user_id: UserId
    course_id: CourseIdParam


class LearnerAccess(BaseModel):
    """The user's live enrolment in the course; ``may_learn``: paid, or a free course."""

    enrolment_id: int
    status: LiveStatus
    payment_status: PaymentStatus
    may_learn: bool


class LearnersQuery(PageQuery):
    """Query of ``GET /internal/enrolments/learners``."""

    course_id: CourseIdParam


class Learner(BaseModel):
    user_id: str
    enrolment_id: int
    status: LiveStatus
    payment_status: PaymentStatus


class LearnerList(BaseModel):
    """The live enrolments of a course, by enrolment id."""

    learners: list[Learner]
    page: int
    per_page: int
    total: int


class UserEnrolmentsQuery(PageQuery):
    """Query of ``GET /internal/enrolments/by-user``."""

    user_id: UserId


class UserEnrolment(BaseModel):
    course_id: int
    enrolment_id: int
    status: LiveStatus
    payment_status: PaymentStatus


class UserEnrolmentList(BaseModel):
    """A user's live enrolments, by enrolment id."""

    enrolments: list[UserEnrolment]
    page: int
    per_page: int
    total: int


class CompletionRequest(Schema):
    """Body of ``POST /internal/enrolments/complete``."""

    user_id: UserId
    course_id: PositiveId


class CompletionOut(BaseModel):
    enrolment_id: int
    status: Literal["completed"]
