"""Course rules, independent of HTTP and storage."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import BaseModel

from common.errors import Conflict, Forbidden, NotFound
from contracts.courses import (  # noqa: F401 - the course rules the contract carries
    ARCHIVED,
    COURSE_STATUSES,
    DRAFT,
    NAME_KEY_MAX,
    NAME_MAX,
    NAME_MIN,
    PUBLISHED,
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
from contracts.users import ADMIN, AUTHOR_ROLES, INSTRUCTOR

if TYPE_CHECKING:
    from common.identity import Caller


class CourseQuery(BaseModel):
    page: int = 1
    per_page: int = 20
    name: str | None = None
    search: str | None = None
    starts_after: datetime | None = None
    starts_before: datetime | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    sort: SortKey = "start_date"


def default_status(caller: Caller) -> str:
    """A new course without a status: an instructor's is a draft until they publish it,
    an admin's is in the catalogue at once (the seed's behaviour)."""
    return DRAFT if caller.role == INSTRUCTOR else PUBLISHED


def sees_everything_of(caller: Caller | None, author_id: str | None) -> bool:
    """Admins and the author see the author's drafts (and may list their archived ones)."""
    if caller is None:
        return False
    return caller.role == ADMIN or (author_id is not None and caller.user_id == author_id)


def may_read(caller: Caller | None, author_id: str | None, status: str) -> bool:
    """A draft is hidden from everyone but its author and admins; the rest is public."""
    return status != DRAFT or sees_everything_of(caller, author_id)


def check_may_author(caller: Caller) -> None:
    if caller.role not in AUTHOR_ROLES:
        raise Forbidden("This action requires the admin or instructor role.")


def check_may_change(caller: Caller, author_id: str | None, status: str) -> None:
    """Admins change any course; an instructor only the ones they authored. Someone
    else's draft does not exist for a non-admin (404), the rest is a 403."""
    check_may_author(caller)
    if caller.role == ADMIN:
        return
    if not may_read(caller, author_id, status):
        raise CourseNotFound()
    if author_id is None or author_id != caller.user_id:
        raise NotCourseAuthor()


class CourseNotFound(NotFound):
    code, message = "course_not_found", "The course was not found."


class CourseNameTaken(Conflict):
    code, message = "course_name_taken", "A course with this name already exists."


class NotCourseAuthor(Forbidden):
    code, message = "not_course_author", "Only the course's author or an admin may change it."
