"""Course storage. Owns its transactions; the service never sees a session."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from common.db import Database
from common.timeutil import to_db
from courses.adapters.tables import CourseRecord
from courses.domain import (
    PUBLISHED,
    CourseFields,
    CourseNameTaken,
    CourseNotFound,
    CourseQuery,
    name_key,
)

# What changing a course computes from the locked row: its new fields and status.
Merge = Callable[[CourseRecord], tuple[CourseFields, str]]


def _column_values(fields: CourseFields) -> dict[str, Any]:
    values = fields.model_dump(include=set(CourseFields.model_fields))
    values["start_date"] = to_db(fields.start_date)
    values["end_date"] = to_db(fields.end_date)
    values["name_key"] = name_key(fields.name)
    return values


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class CourseRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    def add(self, fields: CourseFields, *, author_id: str, status: str) -> CourseRecord:
        try:
            with self.database.transaction() as session:
                record = CourseRecord(**_column_values(fields), author_id=author_id, status=status)
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

    def get_many(self, course_ids: list[int]) -> list[CourseRecord]:
        """The courses among ``course_ids`` that exist, by id."""
        with self.database.transaction() as session:
            rows = session.scalars(
                select(CourseRecord)
                .where(CourseRecord.id.in_(set(course_ids)))
                .order_by(CourseRecord.id.asc())
            ).all()
        return list(rows)

    def get_published_by_name(self, name: str) -> CourseRecord:
        with self.database.transaction() as session:
            record = session.scalar(
                select(CourseRecord).where(
                    CourseRecord.name_key == name_key(name), CourseRecord.status == PUBLISHED
                )
            )
        if record is None:
            raise CourseNotFound()
        return record

    def update(self, course_id: int, merge: Merge) -> CourseRecord:
        """Lock the row, let ``merge`` check the caller and compute the new course, write it."""
        try:
            with self.database.transaction() as session:
                record = session.get(CourseRecord, course_id, with_for_update=True)
                if record is None:
                    raise CourseNotFound()
                fields, status = merge(record)
                for column, value in _column_values(fields).items():
                    setattr(record, column, value)
                record.status = status
                session.flush()
                return record
        except IntegrityError:
            raise CourseNameTaken() from None

    def delete(self, course_id: int, check: Callable[[CourseRecord], None]) -> None:
        """Lock the row, let ``check`` refuse the caller, delete it."""
        with self.database.transaction() as session:
            record = session.get(CourseRecord, course_id, with_for_update=True)
            if record is None:
                raise CourseNotFound()
            check(record)
            session.delete(record)

    def search(self, query: CourseQuery) -> tuple[list[CourseRecord], int]:
        """The catalogue: published courses only."""
        column = getattr(CourseRecord, query.sort.lstrip("-"))
        order = column.desc() if query.sort.startswith("-") else column.asc()
        return self._page(self._filtered(query), order, query.page, query.per_page)

    def by_author(
        self, author_id: str, *, statuses: tuple[str, ...], page: int, per_page: int
    ) -> tuple[list[CourseRecord], int]:
        statement = select(CourseRecord).where(
            CourseRecord.author_id == author_id, CourseRecord.status.in_(statuses)
        )
        return self._page(statement, CourseRecord.start_date.asc(), page, per_page)

    def _page(
        self, statement: Select[CourseRecord], order: Any, page: int, per_page: int
    ) -> tuple[list[CourseRecord], int]:
        with self.database.transaction() as session:
            total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
            rows = session.scalars(
                statement.order_by(order, CourseRecord.id.asc())
                .limit(per_page)
                .offset((page - 1) * per_page)
            ).all()
        return list(rows), total

    @staticmethod
    def _filtered(query: CourseQuery) -> Select[CourseRecord]:
        statement = select(CourseRecord).where(CourseRecord.status == PUBLISHED)
        # ``name`` (the seed's parameter) and ``search`` are both a contains match on the
        # folded name; sent together, a course must match both.
        for text in (query.name, query.search):
            if text:
                pattern = f"%{_escape_like(name_key(text))}%"
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
