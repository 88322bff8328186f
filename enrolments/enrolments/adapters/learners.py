"""What the learning service reads and writes of enrolments: live enrolments by course or
by user, and completion. Owns its transactions; the service never sees a session."""

from __future__ import annotations

from sqlalchemy import Select, func, select

from common.db import Database
from enrolments.adapters.tables import EnrolmentRecord
from enrolments.domain import COMPLETED, EnrolmentNotFound, Page, live_key


class LearnerRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    def live(self, user_id: str, course_id: int) -> EnrolmentRecord:
        """The user's live (active or completed) enrolment in the course: at most one,
        as its ``live_key`` is unique."""
        with self.database.transaction() as session:
            record = session.scalar(
                select(EnrolmentRecord).where(
                    EnrolmentRecord.live_key == live_key(user_id, course_id)
                )
            )
        if record is None:
            raise EnrolmentNotFound()
        return record

    def of_course(self, course_id: int, page: Page) -> tuple[list[EnrolmentRecord], int]:
        return self._page(
            select(EnrolmentRecord).where(
                EnrolmentRecord.course_id == course_id, EnrolmentRecord.live_key.is_not(None)
            ),
            page,
        )

    def of_user(self, user_id: str, page: Page) -> tuple[list[EnrolmentRecord], int]:
        return self._page(
            select(EnrolmentRecord).where(
                EnrolmentRecord.user_id == user_id, EnrolmentRecord.live_key.is_not(None)
            ),
            page,
        )

    def _page(
        self, statement: Select[EnrolmentRecord], page: Page
    ) -> tuple[list[EnrolmentRecord], int]:
        with self.database.transaction() as session:
            total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
            rows = session.scalars(
                statement.order_by(EnrolmentRecord.id.asc())
                .limit(page.per_page)
                .offset(page.offset)
            ).all()
        return list(rows), total

    def complete(self, user_id: str, course_id: int) -> EnrolmentRecord:
        """Mark the live enrolment completed; a completed one is answered as it is. The row
        lock orders this after (or before) a concurrent cancel or expiry: a cancelled or
        expired enrolment is no longer live, so it is not found."""
        with self.database.transaction() as session:
            record = session.scalar(
                select(EnrolmentRecord)
                .where(EnrolmentRecord.live_key == live_key(user_id, course_id))
                .with_for_update()
            )
            if record is None:
                raise EnrolmentNotFound()
            if record.status != COMPLETED:
                record.status = COMPLETED  # still live: it keeps its seat and its live_key
                session.flush()
            return record
