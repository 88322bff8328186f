from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.timeutil import db_now
from courses.domain import NAME_KEY_MAX, PUBLISHED

Id = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class CourseRecord(Base):
    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # The creating user's id; NULL for the courses that predate authorship.
    author_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=PUBLISHED, server_default=PUBLISHED)
    name: Mapped[str] = mapped_column(String(64))
    # Case- and width-folded name; its unique index is what makes names unique.
    name_key: Mapped[str] = mapped_column(String(NAME_KEY_MAX), unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    currency: Mapped[str] = mapped_column(String(3), default="PLN")
    max_participants: Mapped[int | None] = mapped_column(Integer, nullable=True)
    start_date: Mapped[datetime] = mapped_column(DateTime, index=True)
    end_date: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=db_now, onupdate=db_now)

    # A deleted course's id is never reused on SQLite: enrolments still name it.
    __table_args__ = (
        Index("ix_courses_price", "price"),
        # The catalogue lists the published courses in start_date order.
        Index("ix_courses_status_start_date", "status", "start_date"),
        Index("ix_courses_author_id", "author_id"),
        {"sqlite_autoincrement": True},
    )
