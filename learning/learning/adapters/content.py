"""Modules, lessons and media. Owns its transactions; the service never sees a session."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.db import Database
from learning.adapters.locks import ensure_course_content, lock_course_content
from learning.adapters.tables import LessonRecord, MediaRecord, ModuleRecord, TestRecord
from learning.domain import BadOrdering, LessonNotFound, MediaNotFound, ModuleNotFound


def renumber(records: Sequence[Any]) -> None:
    """Positions 1..n in the given order, so no insert, delete or reorder leaves a gap."""
    for position, record in enumerate(records, start=1):
        if record.position != position:
            record.position = position


def reordered(records: Sequence[Any], ids: Sequence[int]) -> list[Any]:
    by_id = {record.id: record for record in records}
    if len(ids) != len(by_id) or set(ids) != set(by_id):
        raise BadOrdering()
    return [by_id[record_id] for record_id in ids]


class ContentRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    # ------------------------------------------------------------------ modules

    def modules(self, course_id: int) -> list[ModuleRecord]:
        with self.database.transaction() as session:
            return list(
                session.scalars(
                    select(ModuleRecord)
                    .where(ModuleRecord.course_id == course_id)
                    .order_by(ModuleRecord.position)
                )
            )

    def module(self, module_id: int) -> ModuleRecord:
        with self.database.transaction() as session:
            record = session.get(ModuleRecord, module_id)
        if record is None:
            raise ModuleNotFound()
        return record

    def add_module(self, course_id: int, fields: dict[str, Any]) -> ModuleRecord:
        ensure_course_content(self.database, course_id)
        with self.database.transaction() as session:
            lock_course_content(session, course_id)
            last = session.scalar(
                select(func.max(ModuleRecord.position)).where(ModuleRecord.course_id == course_id)
            )
            record = ModuleRecord(course_id=course_id, position=(last or 0) + 1, **fields)
            session.add(record)
            session.flush()
            return record

    def update_module(self, module_id: int, changes: dict[str, Any]) -> ModuleRecord:
        with self.database.transaction() as session:
            record = session.get(ModuleRecord, module_id, with_for_update=True)
            if record is None:
                raise ModuleNotFound()
            for name, value in changes.items():
                setattr(record, name, value)
            session.flush()
            return record

    def delete_module(self, module_id: int) -> list[str]:
        """Delete a module and its lessons; the storage keys of their files, to remove."""
        with self.database.transaction() as session:
            record = session.get(ModuleRecord, module_id)
            if record is None:
                raise ModuleNotFound()
            lock_course_content(session, record.course_id)
            keys = self._storage_keys(session, LessonRecord.module_id == module_id)
            session.delete(record)
            session.flush()
            renumber(self._sibling_modules(session, record.course_id))
            return keys

    def order_modules(self, course_id: int, ids: Sequence[int]) -> list[ModuleRecord]:
        ensure_course_content(self.database, course_id)
        with self.database.transaction() as session:
            lock_course_content(session, course_id)
            ordered = reordered(self._sibling_modules(session, course_id), ids)
            renumber(ordered)
            session.flush()
            return ordered

    @staticmethod
    def _sibling_modules(session: Session, course_id: int) -> list[ModuleRecord]:
        return list(
            session.scalars(
                select(ModuleRecord)
                .where(ModuleRecord.course_id == course_id)
                .order_by(ModuleRecord.position, ModuleRecord.id)
            )
        )

    # ------------------------------------------------------------------ lessons

    def lesson(self, lesson_id: int) -> LessonRecord:
        with self.database.transaction() as session:
            record = session.get(LessonRecord, lesson_id)
        if record is None:
            raise LessonNotFound()
        return record

    def lessons(self, module_id: int) -> list[LessonRecord]:
        with self.database.transaction() as session:
            return self._sibling_lessons(session, module_id)

    def add_lesson(self, module: ModuleRecord, fields: dict[str, Any]) -> LessonRecord:
        with self.database.transaction() as session:
            if session.get(ModuleRecord, module.id, with_for_update=True) is None:
                raise ModuleNotFound()
            last = session.scalar(
                select(func.max(LessonRecord.position)).where(LessonRecord.module_id == module.id)
            )
            record = LessonRecord(
                module_id=module.id,
                course_id=module.course_id,
                position=(last or 0) + 1,
                **fields,
            )
            session.add(record)
            session.flush()
            session.refresh(record, ["media"])
            return record

    def update_lesson(self, lesson_id: int, changes: dict[str, Any]) -> LessonRecord:
        with self.database.transaction() as session:
            record = session.get(LessonRecord, lesson_id, with_for_update=True)
            if record is None:
                raise LessonNotFound()
            for name, value in changes.items():
                setattr(record, name, value)
            session.flush()
            return record

    def delete_lesson(self, lesson_id: int) -> list[str]:
        with self.database.transaction() as session:
            record = session.get(LessonRecord, lesson_id)
            if record is None:
                raise LessonNotFound()
            session.get(ModuleRecord, record.module_id, with_for_update=True)
            keys = self._storage_keys(session, LessonRecord.id == lesson_id)
            session.delete(record)
            session.flush()
            renumber(self._sibling_lessons(session, record.module_id))
            return keys

    def order_lessons(self, module_id: int, ids: Sequence[int]) -> list[LessonRecord]:
        with self.database.transaction() as session:
            if session.get(ModuleRecord, module_id, with_for_update=True) is None:
                raise ModuleNotFound()
            ordered = reordered(self._sibling_lessons(session, module_id), ids)
            renumber(ordered)
            session.flush()
            return ordered

    @staticmethod
    def _sibling_lessons(session: Session, module_id: int) -> list[LessonRecord]:
        return list(
            session.scalars(
                select(LessonRecord)
                .where(LessonRecord.module_id == module_id)
                .order_by(LessonRecord.position, LessonRecord.id)
            )
        )

    def test_ids(self, lesson_ids: Sequence[int]) -> dict[int, int]:
        """lesson id → its test's id, for the lessons that have one."""
        if not lesson_ids:
            return {}
        with self.database.transaction() as session:
            rows = session.execute(
                select(TestRecord.lesson_id, TestRecord.id).where(
                    TestRecord.lesson_id.in_(lesson_ids)
                )
            )
            return dict(rows.all())

    def outline(self, course_id: int) -> tuple[list[ModuleRecord], list[LessonRecord]]:
        with self.database.transaction() as session:
            modules = self._sibling_modules(session, course_id)
            lessons = list(
                session.scalars(
                    select(LessonRecord)
                    .where(LessonRecord.course_id == course_id)
                    .order_by(LessonRecord.module_id, LessonRecord.position)
                )
            )
        return modules, lessons

    # ------------------------------------------------------------------ media

    def media(self, media_id: int) -> MediaRecord:
        with self.database.transaction() as session:
            record = session.get(MediaRecord, media_id)
        if record is None:
            raise MediaNotFound()
        return record

    def add_media(self, lesson_id: int, fields: dict[str, Any]) -> MediaRecord:
        with self.database.transaction() as session:
            if session.get(LessonRecord, lesson_id, with_for_update=True) is None:
                raise LessonNotFound()
            last = session.scalar(
                select(func.max(MediaRecord.position)).where(MediaRecord.lesson_id == lesson_id)
            )
            record = MediaRecord(lesson_id=lesson_id, position=(last or 0) + 1, **fields)
            session.add(record)
            session.flush()
            return record

    def delete_media(self, media_id: int) -> str | None:
        with self.database.transaction() as session:
            record = session.get(MediaRecord, media_id)
            if record is None:
                raise MediaNotFound()
            session.get(LessonRecord, record.lesson_id, with_for_update=True)
            session.delete(record)
            session.flush()
            renumber(
                list(
                    session.scalars(
                        select(MediaRecord)
                        .where(MediaRecord.lesson_id == record.lesson_id)
                        .order_by(MediaRecord.position)
                    )
                )
            )
            return record.storage_key

    @staticmethod
    def _storage_keys(session: Session, lesson_filter: Any) -> list[str]:
        rows = session.scalars(
            select(MediaRecord.storage_key)
            .join(LessonRecord, LessonRecord.id == MediaRecord.lesson_id)
            .where(lesson_filter, MediaRecord.storage_key.is_not(None))
        )
        return [key for key in rows if key]
