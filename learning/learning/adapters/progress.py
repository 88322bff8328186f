"""Completions and each learner's progress row, counted in batches (no query per course
or per learner)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select

from common.db import Database
from common.timeutil import db_now
from learning.adapters.locks import ensure_progress, lock_progress
from learning.adapters.tables import CompletionRecord, LessonRecord, ModuleRecord, ProgressRecord


def _published_lessons() -> Select[Any]:
    """Lessons a learner can see: published, in a published module."""
    return (
        select(LessonRecord.id)
        .join(ModuleRecord, ModuleRecord.id == LessonRecord.module_id)
        .where(LessonRecord.published.is_(True), ModuleRecord.published.is_(True))
    )


class ProgressRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    def complete(self, user_id: str, course_id: int, lesson_id: int) -> None:
        """Record a completed lesson once, however often it is sent."""
        ensure_progress(self.database, user_id, course_id)
        with self.database.transaction() as session:
            progress = lock_progress(session, user_id, course_id)
            progress.last_activity_at = db_now()
            done = session.scalar(
                select(CompletionRecord.id).where(
                    CompletionRecord.user_id == user_id, CompletionRecord.lesson_id == lesson_id
                )
            )
            if done is None:
                session.add(
                    CompletionRecord(user_id=user_id, course_id=course_id, lesson_id=lesson_id)
                )

    def uncomplete(self, user_id: str, course_id: int, lesson_id: int) -> None:
        ensure_progress(self.database, user_id, course_id)
        with self.database.transaction() as session:
            progress = lock_progress(session, user_id, course_id)
            progress.last_activity_at = db_now()
            session.execute(
                delete(CompletionRecord).where(
                    CompletionRecord.user_id == user_id, CompletionRecord.lesson_id == lesson_id
                )
            )

    def touch(self, user_id: str, course_id: int) -> None:
        ensure_progress(self.database, user_id, course_id)
        with self.database.transaction() as session:
            lock_progress(session, user_id, course_id).last_activity_at = db_now()

    def published_lesson_ids(self, course_id: int) -> list[int]:
        with self.database.transaction() as session:
            return list(
                session.scalars(_published_lessons().where(LessonRecord.course_id == course_id))
            )

    def completed_lesson_ids(self, user_id: str, course_id: int) -> list[int]:
        with self.database.transaction() as session:
            return list(
                session.scalars(
                    select(CompletionRecord.lesson_id)
                    .where(
                        CompletionRecord.user_id == user_id, CompletionRecord.course_id == course_id
                    )
                    .where(CompletionRecord.lesson_id.in_(_published_lessons()))
                    .order_by(CompletionRecord.lesson_id)
                )
            )

    def published_counts(self, course_ids: Sequence[int]) -> dict[int, int]:
        if not course_ids:
            return {}
        with self.database.transaction() as session:
            rows = session.execute(
                select(LessonRecord.course_id, func.count())
                .join(ModuleRecord, ModuleRecord.id == LessonRecord.module_id)
                .where(
                    LessonRecord.course_id.in_(course_ids),
                    LessonRecord.published.is_(True),
                    ModuleRecord.published.is_(True),
                )
                .group_by(LessonRecord.course_id)
                # MariaDB otherwise scans every module of every course first and then reads
                # each lesson row, Markdown and all (7 ms against 1.3 ms at 10,000 lessons).
                .prefix_with("STRAIGHT_JOIN", dialect="mysql")
            )
            return dict(rows.all())

    def completed_counts_by_course(self, user_id: str, course_ids: Sequence[int]) -> dict[int, int]:
        if not course_ids:
            return {}
        with self.database.transaction() as session:
            rows = session.execute(
                select(CompletionRecord.course_id, func.count())
                .where(
                    CompletionRecord.user_id == user_id,
                    CompletionRecord.course_id.in_(course_ids),
                    CompletionRecord.lesson_id.in_(_published_lessons()),
                )
                .group_by(CompletionRecord.course_id)
            )
            return dict(rows.all())

    def completed_counts_by_user(self, course_id: int, user_ids: Sequence[str]) -> dict[str, int]:
        if not user_ids:
            return {}
        with self.database.transaction() as session:
            rows = session.execute(
                select(CompletionRecord.user_id, func.count())
                .where(
                    CompletionRecord.course_id == course_id,
                    CompletionRecord.user_id.in_(user_ids),
                    CompletionRecord.lesson_id.in_(_published_lessons()),
                )
                .group_by(CompletionRecord.user_id)
            )
            return dict(rows.all())

    def rows_for_user(self, user_id: str, course_ids: Sequence[int]) -> dict[int, ProgressRecord]:
        if not course_ids:
            return {}
        with self.database.transaction() as session:
            rows = session.scalars(
                select(ProgressRecord).where(
                    ProgressRecord.user_id == user_id, ProgressRecord.course_id.in_(course_ids)
                )
            )
            return {row.course_id: row for row in rows}

    def rows_for_course(self, course_id: int, user_ids: Sequence[str]) -> dict[str, ProgressRecord]:
        if not user_ids:
            return {}
        with self.database.transaction() as session:
            rows = session.scalars(
                select(ProgressRecord).where(
                    ProgressRecord.course_id == course_id, ProgressRecord.user_id.in_(user_ids)
                )
            )
            return {row.user_id: row for row in rows}

    def row(self, user_id: str, course_id: int) -> ProgressRecord | None:
        return self.rows_for_user(user_id, [course_id]).get(course_id)

    def finished(self, user_id: str, course_id: int, at: datetime | None = None) -> bool:
        """Note the first moment the learner reached 100 %; True if the enrolments service
        still has to be told."""
        ensure_progress(self.database, user_id, course_id)
        with self.database.transaction() as session:
            progress = lock_progress(session, user_id, course_id)
            if progress.completed_at is None:
                progress.completed_at = at or db_now()
            return not progress.enrolment_completed

    def enrolment_told(self, user_id: str, course_id: int) -> None:
        with self.database.transaction() as session:
            lock_progress(session, user_id, course_id).enrolment_completed = True
