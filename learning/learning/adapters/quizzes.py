"""Tests, questions and attempts. Owns its transactions; the service never sees a session."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.db import Database
from common.timeutil import db_now
from contracts.learning import MAX_QUESTIONS, QuestionFields
from learning.adapters.content import renumber, reordered
from learning.adapters.locks import ensure_progress, lock_progress
from learning.adapters.tables import (
    AttemptRecord,
    LessonRecord,
    OptionRecord,
    QuestionRecord,
    TestRecord,
)
from learning.domain import (
    AttemptNotFound,
    LessonNotFound,
    QuestionNotFound,
    TestNotFound,
    TooManyQuestions,
)


def _options(fields: QuestionFields) -> list[OptionRecord]:
    return [
        OptionRecord(position=position, text=option.text, is_correct=option.is_correct)
        for position, option in enumerate(fields.options, start=1)
    ]


class QuizRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    # ------------------------------------------------------------------ tests

    def test(self, test_id: int) -> TestRecord:
        with self.database.transaction() as session:
            record = session.get(TestRecord, test_id)
        if record is None:
            raise TestNotFound()
        return record

    def test_of_lesson(self, lesson_id: int) -> TestRecord | None:
        with self.database.transaction() as session:
            return session.scalar(select(TestRecord).where(TestRecord.lesson_id == lesson_id))

    def put_test(self, lesson: LessonRecord, fields: dict[str, Any]) -> tuple[TestRecord, bool]:
        """Create the lesson's test or replace its settings; (test, created)."""
        with self.database.transaction() as session:
            if session.get(LessonRecord, lesson.id, with_for_update=True) is None:
                raise LessonNotFound()
            record = session.scalar(select(TestRecord).where(TestRecord.lesson_id == lesson.id))
            created = record is None
            if record is None:
                record = TestRecord(lesson_id=lesson.id, course_id=lesson.course_id)
                session.add(record)
            for name, value in fields.items():
                setattr(record, name, value)
            session.flush()
            return record, created

    # ------------------------------------------------------------------ questions

    def questions(self, test_id: int) -> list[QuestionRecord]:
        with self.database.transaction() as session:
            return self._questions(session, test_id)

    @staticmethod
    def _questions(session: Session, test_id: int) -> list[QuestionRecord]:
        return list(
            session.scalars(
                select(QuestionRecord)
                .where(QuestionRecord.test_id == test_id)
                .order_by(QuestionRecord.position, QuestionRecord.id)
            )
        )

    def question(self, question_id: int) -> QuestionRecord:
        with self.database.transaction() as session:
            record = session.get(QuestionRecord, question_id)
        if record is None:
            raise QuestionNotFound()
        return record

    def add_question(self, test_id: int, fields: QuestionFields) -> QuestionRecord:
        with self.database.transaction() as session:
            if session.get(TestRecord, test_id, with_for_update=True) is None:
                raise TestNotFound()
            count, last = session.execute(
                select(func.count(), func.max(QuestionRecord.position)).where(
                    QuestionRecord.test_id == test_id
                )
            ).one()
            if count >= MAX_QUESTIONS:
                raise TooManyQuestions()
            record = QuestionRecord(
                test_id=test_id,
                position=(last or 0) + 1,
                text=fields.text,
                question_type=fields.question_type,
                points=fields.points,
                accepted_answers=json.dumps(fields.accepted_answers, ensure_ascii=False),
                options=_options(fields),
            )
            session.add(record)
            session.flush()
            return record

    def update_question(
        self, question_id: int, merge: Callable[[QuestionRecord], QuestionFields]
    ) -> QuestionRecord:
        """Lock the question, let ``merge`` compute the new one, write it. Options are
        replaced whole when they change, so their ids change too."""
        with self.database.transaction() as session:
            record = session.get(QuestionRecord, question_id, with_for_update=True)
            if record is None:
                raise QuestionNotFound()
            fields = merge(record)
            record.text = fields.text
            record.question_type = fields.question_type
            record.points = fields.points
            record.accepted_answers = json.dumps(fields.accepted_answers, ensure_ascii=False)
            current = [(o.text, o.is_correct) for o in record.options]
            if current != [(o.text, o.is_correct) for o in fields.options]:
                record.options = _options(fields)
            session.flush()
            return record

    def delete_question(self, question_id: int) -> None:
        with self.database.transaction() as session:
            record = session.get(QuestionRecord, question_id)
            if record is None:
                raise QuestionNotFound()
            session.get(TestRecord, record.test_id, with_for_update=True)
            session.delete(record)
            session.flush()
            renumber(self._questions(session, record.test_id))

    def order_questions(self, test_id: int, ids: Sequence[int]) -> list[QuestionRecord]:
        with self.database.transaction() as session:
            if session.get(TestRecord, test_id, with_for_update=True) is None:
                raise TestNotFound()
            ordered = reordered(self._questions(session, test_id), ids)
            renumber(ordered)
            session.flush()
            return ordered

    # ------------------------------------------------------------------ attempts

    def attempt(self, attempt_id: int) -> AttemptRecord:
        with self.database.transaction() as session:
            record = session.get(AttemptRecord, attempt_id)
        if record is None:
            raise AttemptNotFound()
        return record

    def attempts(self, test_id: int, user_id: str) -> list[AttemptRecord]:
        with self.database.transaction() as session:
            return self._attempts(session, test_id, user_id)

    @staticmethod
    def _attempts(session: Session, test_id: int, user_id: str) -> list[AttemptRecord]:
        return list(
            session.scalars(
                select(AttemptRecord)
                .where(AttemptRecord.test_id == test_id, AttemptRecord.user_id == user_id)
                .order_by(AttemptRecord.attempt_no)
            )
        )

    def start_attempt(
        self,
        test: TestRecord,
        user_id: str,
        decide: Callable[[list[AttemptRecord]], AttemptRecord | bool],
    ) -> tuple[AttemptRecord | None, bool]:
        """Under the learner's lock in the course, ``decide`` sees their attempts (and may
        grade one whose time ran out) and names the one to return (an open one), True to
        start the next, or False when none may start; (attempt or None, new). What decide
        changed is committed either way. The unique (test, user, attempt_no) stops a start
        that slips past the lock."""
        ensure_progress(self.database, user_id, test.course_id)
        try:
            with self.database.transaction() as session:
                lock_progress(session, user_id, test.course_id)
                existing = self._attempts(session, test.id, user_id)
                chosen = decide(existing)
                if chosen is False:
                    return None, False
                if chosen is not True:
                    return chosen, False
                record = self._new_attempt(test, user_id, len(existing) + 1)
                session.add(record)
                session.flush()
                return record, True
        except IntegrityError:
            return self._open_attempt(test.id, user_id), False

    @staticmethod
    def _new_attempt(test: TestRecord, user_id: str, number: int) -> AttemptRecord:
        started = db_now()
        deadline = None
        if test.time_limit_seconds is not None:
            deadline = started + timedelta(seconds=test.time_limit_seconds)
        return AttemptRecord(
            test_id=test.id,
            user_id=user_id,
            attempt_no=number,
            started_at=started,
            deadline=deadline,
            answers="[]",
        )

    def _open_attempt(self, test_id: int, user_id: str) -> AttemptRecord:
        for record in reversed(self.attempts(test_id, user_id)):
            if record.submitted_at is None:
                return record
        raise AttemptNotFound()

    def write_attempt(
        self,
        attempt_id: int,
        course_id: int,
        user_id: str,
        change: Callable[[AttemptRecord], None],
    ) -> AttemptRecord:
        """Lock the learner in the course and the attempt, let ``change`` check and write."""
        with self.database.transaction() as session:
            lock_progress(session, user_id, course_id)
            record = session.get(AttemptRecord, attempt_id, with_for_update=True)
            if record is None:
                raise AttemptNotFound()
            change(record)
            session.flush()
            return record

    def submitted_scores(self, test_ids: Sequence[int], user_id: str) -> dict[int, list[Any]]:
        """test id → the learner's submitted attempts' (score, submitted_at), oldest first."""
        if not test_ids:
            return {}
        with self.database.transaction() as session:
            rows = session.execute(
                select(AttemptRecord.test_id, AttemptRecord.score)
                .where(
                    AttemptRecord.test_id.in_(test_ids),
                    AttemptRecord.user_id == user_id,
                    AttemptRecord.submitted_at.is_not(None),
                )
                .order_by(AttemptRecord.test_id, AttemptRecord.attempt_no)
            )
            scores: dict[int, list[Any]] = {}
            for test_id, score in rows:
                scores.setdefault(test_id, []).append(score)
            return scores

    def tests_of_course(self, course_id: int) -> list[TestRecord]:
        with self.database.transaction() as session:
            return list(
                session.scalars(select(TestRecord).where(TestRecord.course_id == course_id))
            )
