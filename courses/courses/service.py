"""Course business rules: no Flask, no sessions."""

from __future__ import annotations

from typing import Any

from common.timeutil import from_db
from contracts.currencies import STORED_CURRENCY
from courses.adapters.repository import CourseRepository
from courses.adapters.tables import CourseRecord
from courses.domain import CourseFields, CourseQuery


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

    def create(self, fields: CourseFields) -> CourseRecord:
        return self.repository.add(fields)

    def get(self, course_id: int) -> CourseRecord:
        return self.repository.get(course_id)

    def get_by_name(self, name: str) -> CourseRecord:
        return self.repository.get_by_name(name)

    def update(self, course_id: int, changes: dict[str, Any]) -> CourseRecord:
        """Apply only the sent fields; the merged course must pass every create rule."""

        def merge(record: CourseRecord) -> CourseFields:
            return CourseFields.model_validate(
                {**_stored_fields(record), **changes},
                context={STORED_CURRENCY: record.currency},
            )

        return self.repository.update(course_id, merge)

    def delete(self, course_id: int) -> None:
        self.repository.delete(course_id)

    def search(self, query: CourseQuery) -> tuple[list[CourseRecord], int]:
        return self.repository.search(query)
