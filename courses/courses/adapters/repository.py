"""Course storage. Owns its transactions; the service never sees a session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from common.db import Database
from common.timeutil import to_db
from courses.adapters.tables import CourseRecord
from courses.domain import CourseFields, CourseNameTaken, CourseNotFound, CourseQuery, name_key


def _column_values(fields: CourseFields) -> dict[str, Any]:
    values = fields.model_dump()
    values["start_date"] = to_db(fields.start_date)
    values["end_date"] = to_db(fields.end_date)
    values["name_key"] = name_key(fields.name)
    return values


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class CourseRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    def add(self, fields: CourseFields) -> CourseRecord:
        try:
            with self.database.transaction() as session:
                record = CourseRecord(**_column_values(fields))
                session.add(record)
                session.flush()
                return record
        except IntegrityError:
            raise CourseNameTaken() from None

    def get(self, course_id: int) -> CourseRecord:
        with self.database.transaction() as session:
            record = session.get(CourseRecord, course_id)
        if record is None:
            raise CourseNotFound()
        return record

    def get_by_name(self, name: str) -> CourseRecord:
        with self.database.transaction() as session:
            record = session.scalar(
                select(CourseRecord).where(CourseRecord.name_key == name_key(name))
            )
        if record is None:
            raise CourseNotFound()
        return record

    def update(self, course_id: int, merge: Callable[[CourseRecord], CourseFields]) -> CourseRecord:
        """Lock the row, let ``merge`` compute the new course, write it."""
        try:
            with self.database.transaction() as session:
                record = session.get(CourseRecord, course_id, with_for_update=True)
                if record is None:
                    raise CourseNotFound()
                for column, value in _column_values(merge(record)).items():
                    setattr(record, column, value)
                session.flush()
                return record
        except IntegrityError:
            raise CourseNameTaken() from None

    def delete(self, course_id: int) -> None:
        with self.database.transaction() as session:
            record = session.get(CourseRecord, course_id)
            if record is None:
                raise CourseNotFound()
            session.delete(record)

    def search(self, query: CourseQuery) -> tuple[list[CourseRecord], int]:
        statement = self._filtered(query)
        with self.database.transaction() as session:
            total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
            column_name = query.sort.lstrip("-")
            column = getattr(CourseRecord, column_name)
            order = column.desc() if query.sort.startswith("-") else column.asc()
            rows = session.scalars(
                statement.order_by(order, CourseRecord.id.asc())
                .limit(query.per_page)
                .offset((query.page - 1) * query.per_page)
            ).all()
        return list(rows), total

    @staticmethod
    def _filtered(query: CourseQuery) -> Select[CourseRecord]:
        statement = select(CourseRecord)
        if query.search:
            pattern = f"%{_escape_like(name_key(query.search))}%"
            statement = statement.where(CourseRecord.name_key.like(pattern, escape="\\"))
        if query.starts_after is not None:
            statement = statement.where(CourseRecord.start_date >= to_db(query.starts_after))
        if query.starts_before is not None:
            statement = statement.where(CourseRecord.start_date <= to_db(query.starts_before))
        if query.min_price is not None:
            statement = statement.where(CourseRecord.price >= query.min_price)
        if query.max_price is not None:
            statement = statement.where(CourseRecord.price <= query.max_price)
        return statement
