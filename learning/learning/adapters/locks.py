"""The rows that serialise writes which must see each other: reorders and inserts
in one list, and one learner's attempts and completions in one course."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.db import Database
from common.timeutil import db_now
from learning.adapters.tables import CourseContentRecord, ProgressRecord


def ensure_row(database: Database, record: Any) -> None:
    """Insert the lock row if it is missing; a concurrent insert of the same row is fine."""
    try:
        with database.transaction() as session:
            session.add(record)
    except IntegrityError:
        pass


def lock_course_content(session: Session, course_id: int) -> None:
    found = session.get(CourseContentRecord, course_id, with_for_update=True)
    if found is None:
        raise LookupError(course_id)


def ensure_course_content(database: Database, course_id: int) -> None:
    with database.transaction() as session:
        if session.get(CourseContentRecord, course_id) is not None:
            return
    ensure_row(database, CourseContentRecord(course_id=course_id))


def ensure_progress(database: Database, user_id: str, course_id: int) -> None:
    with database.transaction() as session:
        if _progress_query(session, user_id, course_id, lock=False) is not None:
            return
    ensure_row(
        database, ProgressRecord(user_id=user_id, course_id=course_id, last_activity_at=db_now())
    )


def lock_progress(session: Session, user_id: str, course_id: int) -> ProgressRecord:
    record = _progress_query(session, user_id, course_id, lock=True)
    if record is None:
        raise LookupError((user_id, course_id))
    return record


def _progress_query(
    session: Session, user_id: str, course_id: int, *, lock: bool
) -> ProgressRecord | None:
    statement = select(ProgressRecord).where(
        ProgressRecord.user_id == user_id, ProgressRecord.course_id == course_id
    )
    if lock:
        statement = statement.with_for_update()
    return session.scalar(statement)
