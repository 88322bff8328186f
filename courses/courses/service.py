"""Course business rules: no Flask, no sessions."""

from __future__ import annotations

from typing import Any

from common.identity import Caller
from common.timeutil import from_db
from contracts.currencies import STORED_CURRENCY
from courses.adapters.repository import CourseRepository
from courses.adapters.tables import CourseRecord
from courses.domain import (
    COURSE_STATUSES,
    PUBLISHED,
    CourseFields,
    CourseNotFound,
    CourseQuery,
    check_may_author,
    check_may_change,
    default_status,
    may_read,
    sees_everything_of,
)


def _stored_fields(record: CourseRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "description": record.description,
        "price": record.price,
        "currency": record.currency,
        "max_participants": record.max_participants,
        "start_date": from_db(record.start_date),
        "end_date": from_db(record.end_date),
    }


class CourseService:
    def __init__(self, repository: CourseRepository) -> None:
        self.repository = repository

    def create(self, caller: Caller, fields: CourseFields, status: str | None) -> CourseRecord:
        """The caller becomes the author; the body never names one."""
        check_may_author(caller)
        return self.repository.add(
            fields, author_id=caller.user_id, status=status or default_status(caller)
        )

    def get(self, caller: Caller | None, course_id: int) -> CourseRecord:
        """A draft is 404 to everyone but its author and admins; archived ones are readable."""
        record = self.repository.get(course_id)
        if not may_read(caller, record.author_id, record.status):
            raise CourseNotFound()
        return record

    def get_internal(self, course_id: int) -> CourseRecord:
        """For other services (internal key): any status, no caller."""
        return self.repository.get(course_id)

    def get_many_internal(self, course_ids: list[int]) -> list[CourseRecord]:
        return self.repository.get_many(course_ids)

    def get_by_name(self, name: str) -> CourseRecord:
        """Like the catalogue: only a published course is found by name."""
        return self.repository.get_published_by_name(name)

    def update(self, caller: Caller, course_id: int, changes: dict[str, Any]) -> CourseRecord:
        """Apply only the sent fields; the merged course must pass every create rule."""
        changes = dict(changes)
        new_status = changes.pop("status", None)

        def merge(record: CourseRecord) -> tuple[CourseFields, str]:
            check_may_change(caller, record.author_id, record.status)
            fields = CourseFields.model_validate(
                {**_stored_fields(record), **changes},
                context={STORED_CURRENCY: record.currency},
            )
            return fields, str(new_status or record.status)

        return self.repository.update(course_id, merge)

    def delete(self, caller: Caller, course_id: int) -> None:
        self.repository.delete(
            course_id, lambda record: check_may_change(caller, record.author_id, record.status)
        )

    def search(self, query: CourseQuery) -> tuple[list[CourseRecord], int]:
        return self.repository.search(query)

    def by_author(
        self, caller: Caller | None, author_id: str, page: int, per_page: int
    ) -> tuple[list[CourseRecord], int]:
        """The author's published courses; all of them for the author and admins."""
        statuses = COURSE_STATUSES if sees_everything_of(caller, author_id) else (PUBLISHED,)
        return self.repository.by_author(author_id, statuses=statuses, page=page, per_page=per_page)
