from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.timeutil import db_now

Id = BigInteger().with_variant(Integer, "sqlite")
# SQLite would hand a deleted row's id to the next insert; an enrolment id is its
# invoice's oid at Fakturownia, so ids must only grow (MariaDB's already do).
GROWING_IDS = {"sqlite_autoincrement": True}
# Outbox timing needs sub-second precision (short backoffs, leases).
Moment = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


class Base(DeclarativeBase):
    pass


class EnrolmentRecord(Base):
    __tablename__ = "enrolments"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    course_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="active")
    payment_status: Mapped[str] = mapped_column(String(16), default="pending")
    # "user:course" while live (active/completed), NULL otherwise; unique.
    live_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Snapshots taken at enrol time.
    course_name: Mapped[str] = mapped_column(String(64))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    currency: Mapped[str] = mapped_column(String(3))
    course_end_date: Mapped[datetime] = mapped_column(DateTime)
    buyer_name: Mapped[str] = mapped_column(String(255))
    buyer_email: Mapped[str] = mapped_column(String(255))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    invoice_status: Mapped[str] = mapped_column(String(16), default="none")
    invoice_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    invoice_number: Mapped[str | None] = mapped_column(String(64), nullable=True)
    invoice_view_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    invoice_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=db_now, onupdate=db_now)

    __table_args__ = (
        Index("ix_enrolments_user_created", "user_id", "created_at"),
        Index("ix_enrolments_status_end", "status", "course_end_date"),
        Index("ix_enrolments_course_live", "course_id", "live_key"),
        UniqueConstraint("live_key", name="uq_enrolments_live_key"),
        GROWING_IDS,
    )


class CourseSeatRecord(Base):
    """One row per course: enrolments into a course lock it, so capacity checks serialise."""

    __tablename__ = "course_seats"

    course_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)


class InvoiceJobRecord(Base):
    """The invoice outbox: one row per paid enrolment, written with the payment."""

    __tablename__ = "invoice_outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    enrolment_id: Mapped[int] = mapped_column(
        BigInteger,
        ForeignKey("enrolments.id", ondelete="CASCADE", name="fk_invoice_outbox_enrolment"),
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(Moment)
    locked_until: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    lease_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=db_now, onupdate=db_now)

    __table_args__ = (
        Index("ix_invoice_outbox_due", "status", "available_at"),
        UniqueConstraint("enrolment_id", name="uq_invoice_outbox_enrolment"),
        GROWING_IDS,
    )


class MailRecord(Base):
    """The mail outbox drained by common.outbox.OutboxRelay."""

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(255))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(Moment)
    locked_until: Mapped[datetime | None] = mapped_column(Moment, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)
    # When it was sent or given up; the purge drops it MAIL_RETENTION_DAYS later.
    finished_at: Mapped[datetime | None] = mapped_column(Moment, nullable=True)

    __table_args__ = (
        Index("ix_mail_outbox_due", "status", "available_at"),
        Index("ix_mail_outbox_finished", "finished_at"),
        GROWING_IDS,
    )


class JobRunRecord(Base):
    """A scheduled job's run of a day; the primary key lets exactly one process run it."""

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_on: Mapped[date] = mapped_column(Date, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
