"""The courses API: its field rules, request and response models."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from common.timeutil import from_db
from common.validation import QuerySchema, Schema, UtcDatetime
from contracts.currencies import ISO_4217, known_currency

NAME_MIN, NAME_MAX = 2, 64
# Width of the name_key column. NFKC and case folding can lengthen a name (one "\ufdfa"
# becomes 18 characters), so a name within NAME_MAX may still not fit.
NAME_KEY_MAX = 255
Name = Annotated[str, Field(min_length=NAME_MIN, max_length=NAME_MAX)]
Description = Annotated[str, Field(max_length=2000)]
Price = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)]
Currency = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code (a course keeps the one it has even once withdrawn)",
        json_schema_extra={"enum": sorted(ISO_4217)},
    ),
    AfterValidator(known_currency),
]
Capacity = Annotated[int, Field(ge=1, le=1_000_000)]

# Course.status: a draft is seen by its author and admins only; the catalogue lists the
# published ones; an archived course stays readable but takes no new enrolments.
DRAFT, PUBLISHED, ARCHIVED = "draft", "published", "archived"
COURSE_STATUSES: tuple[str, ...] = (DRAFT, PUBLISHED, ARCHIVED)
CourseStatus = Literal["draft", "published", "archived"]
PageNumber = Annotated[int, Field(ge=1, le=100_000)]
PerPage = Annotated[int, Field(ge=1, le=100)]
CourseId = Annotated[int, Field(ge=1, le=2**63 - 1)]
# The most ids one ``GET /internal/courses?ids=`` may ask for.
MAX_BATCH_IDS = 500
_ID_PATTERN = re.compile(r"^[0-9]{1,19}$")

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
    return unicodedata.normalize("NFKC", " ".join(name.split())).casefold()


def _status_not_null(value: str | None) -> str | None:
    if value is None:
        raise ValueError("status cannot be null")
    return value


class CourseCreate(CourseFields):
    """Body of ``POST /api/course``. Without ``status``, an instructor's new course is a
    draft and an admin's is published at once (the seed's behaviour)."""

    status: CourseStatus | None = None

    _status = field_validator("status")(_status_not_null)


# What PATCH may leave out but never set to null (description and max_participants may:
# no description, no limit).
_NOT_NULL = ("name", "price", "currency", "start_date", "end_date", "status")


def _drop_null(schema: dict[str, Any]) -> None:
    """In the published schema, fields that may be omitted but not sent as null."""
    for name in _NOT_NULL:
        prop = schema["properties"][name]
        prop["anyOf"] = [s for s in prop.get("anyOf", []) if s.get("type") != "null"]
        if len(prop["anyOf"]) == 1:
            prop.update(prop.pop("anyOf")[0])
        prop.pop("default", None)


class CourseUpdate(Schema):
    """Body of ``PATCH /api/course/<id>``: only the fields sent change."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra=_drop_null
    )

    name: Name | None = None
    description: Description | None = None
    price: Price | None = None
    currency: Currency | None = None
    max_participants: Capacity | None = None
    start_date: UtcDatetime | None = None
    end_date: UtcDatetime | None = None
    status: CourseStatus | None = None

    @field_validator(*_NOT_NULL)
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            raise ValueError(f"{info.field_name} cannot be null")
        return value

    def changes(self) -> dict[str, object]:
        return {field: getattr(self, field) for field in self.model_fields_set}


class CourseListQuery(QuerySchema):
    """Query of ``GET /api/course/``: the catalogue, filtered, or one course by ``exact_name``.

    ``name`` is the seed's search: a case-insensitive *contains* match, answered as a page
    of the catalogue like ``search`` (an empty page when nothing matches)."""

    name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    exact_name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    page: PageNumber = 1
    per_page: PerPage = 20
    search: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    starts_after: UtcDatetime | None = None
    starts_before: UtcDatetime | None = None
    min_price: Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)] | None = None
    max_price: Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)] | None = None
    sort: SortKey = "start_date"


class AuthorCoursesQuery(QuerySchema):
    """Query of ``GET /api/course/author/<author_id>``: paginated like the catalogue."""

    page: PageNumber = 1
    per_page: PerPage = 20


class CourseIdsQuery(QuerySchema):
    """Query of the internal ``GET /internal/courses?ids=1,2,3``."""

    ids: Annotated[list[CourseId], Field(min_length=1, max_length=MAX_BATCH_IDS)]

    @field_validator("ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("ids must be one comma-separated list of positive integers")
        parts = value.split(",")
        if len(parts) > MAX_BATCH_IDS:
            raise ValueError(f"at most {MAX_BATCH_IDS} ids")
        if not all(_ID_PATTERN.fullmatch(part) for part in parts):
            raise ValueError("ids must be one comma-separated list of positive integers")
        return [int(part) for part in parts]


class CourseOut(BaseModel):
    id: int
    author_id: str | None
    status: CourseStatus
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


class CourseBatch(BaseModel):
    """Answer of the internal ``GET /internal/courses?ids=``: the courses that exist."""

    courses: list[CourseOut]
