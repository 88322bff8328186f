"""Request and response models of the courses API (the gateway reuses them)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, field_serializer

from common.timeutil import from_db
from common.validation import QuerySchema, Schema, UtcDatetime
from courses.domain import (
    Capacity,
    CourseFields,
    Currency,
    Description,
    Name,
    Price,
    SortKey,
)


class CourseCreate(CourseFields):
    """Body of ``POST /api/course``."""


class CourseUpdate(Schema):
    """Body of ``PATCH /api/course/<id>``: only the fields sent change."""

    name: Name | None = None
    description: Description | None = None
    price: Price | None = None
    currency: Currency | None = None
    max_participants: Capacity | None = None
    start_date: UtcDatetime | None = None
    end_date: UtcDatetime | None = None

    def changes(self) -> dict[str, object]:
        return {field: getattr(self, field) for field in self.model_fields_set}


class CourseListQuery(QuerySchema):
    """Query of ``GET /api/course/``: exact ``name`` lookup, or the catalogue."""

    name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    page: Annotated[int, Field(ge=1, le=100_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=100)] = 20
    search: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    starts_after: UtcDatetime | None = None
    starts_before: UtcDatetime | None = None
    min_price: Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)] | None = None
    max_price: Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)] | None = None
    sort: SortKey = "start_date"


class CourseOut(BaseModel):
    id: int
    name: str
    description: str | None
    price: Decimal
    currency: str
    max_participants: int | None
    start_date: datetime
    end_date: datetime
    created_at: datetime
    updated_at: datetime

    @field_serializer("price")
    def _price_as_string(self, price: Decimal) -> str:
        return f"{price:.2f}"

    @field_serializer("start_date", "end_date", "created_at", "updated_at")
    def _as_utc(self, value: datetime) -> str:
        return from_db(value).isoformat()


class CourseList(BaseModel):
    courses: list[CourseOut]
    page: int
    per_page: int
    total: int
