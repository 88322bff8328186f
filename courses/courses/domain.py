"""Course rules, independent of HTTP and storage."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from common.errors import Conflict, NotFound
from common.validation import UtcDatetime
from courses.currencies import known_currency

NAME_MIN, NAME_MAX = 2, 64
# Width of the name_key column. NFKC and case folding can lengthen a name (one "\ufdfa"
# becomes 18 characters), so a name within NAME_MAX may still not fit.
NAME_KEY_MAX = 255
Name = Annotated[str, Field(min_length=NAME_MIN, max_length=NAME_MAX)]
Description = Annotated[str, Field(max_length=2000)]
Price = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)]
Currency = Annotated[
    str,
    Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code"),
    AfterValidator(known_currency),
]
Capacity = Annotated[int, Field(ge=1, le=1_000_000)]

SORTABLE = ("name", "price", "start_date", "end_date", "created_at")
SortKey = Literal[
    "name",
    "-name",
    "price",
    "-price",
    "start_date",
    "-start_date",
    "end_date",
    "-end_date",
    "created_at",
    "-created_at",
]


class CourseFields(BaseModel):
    """A complete, valid course. PATCH merges into the stored course and must
    produce one of these again."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    description: Description | None = None
    price: Price
    currency: Currency = "PLN"
    max_participants: Capacity | None = None
    start_date: UtcDatetime
    end_date: UtcDatetime

    @field_validator("name")
    @classmethod
    def _collapse_inner_spaces(cls, value: str) -> str:
        value = " ".join(value.split())
        if len(name_key(value)) > NAME_KEY_MAX:
            raise ValueError("the name is too long once normalised")
        return value

    @model_validator(mode="after")
    def _starts_before_it_ends(self) -> CourseFields:
        if self.start_date >= self.end_date:
            raise ValueError("start_date must be before end_date")
        return self


def name_key(name: str) -> str:
    """The form under which two names count as the same course."""
    import unicodedata

    return unicodedata.normalize("NFKC", " ".join(name.split())).casefold()


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
