"""Course rules, independent of HTTP and storage."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel

from common.errors import Conflict, NotFound
from contracts.courses import (  # noqa: F401 - the course rules the contract carries
    NAME_KEY_MAX,
    NAME_MAX,
    NAME_MIN,
    SORTABLE,
    Capacity,
    CourseFields,
    Currency,
    Description,
    Name,
    Price,
    SortKey,
    name_key,
)


class CourseQuery(BaseModel):
    page: int = 1
    per_page: int = 20
    search: str | None = None
    starts_after: datetime | None = None
    starts_before: datetime | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    sort: SortKey = "start_date"


class CourseNotFound(NotFound):
    code, message = "course_not_found", "The course was not found."


class CourseNameTaken(Conflict):
    code, message = "course_name_taken", "A course with this name already exists."
