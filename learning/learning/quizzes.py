"""Tests, questions and attempts. Grading is the server's alone, and a learner's view
has no field that could carry a correct answer until the test's reveal policy allows."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from common.errors import ApiError
from common.identity import Caller
from common.timeutil import db_now, from_db
from contracts.learning import (
    AnswerIn,
    AttemptList,
    AttemptOut,
    AttemptSummary,
    OptionLearnerOut,
    OptionStaffOut,
    QuestionFields,
    QuestionLearnerOut,
    QuestionReview,
    QuestionStaffOut,
    TestLearnerOut,
    TestSettings,
    TestStaffOut,
)
from learning.adapters.tables import AttemptRecord, QuestionRecord, TestRecord
from learning.domain import (
    DEADLINE_GRACE_SECONDS,
    Answer,
    AttemptClosed,
    AttemptNotFound,
    Choice,
    DeadlinePassed,
    EmptyTest,
    NoAttemptsLeft,
    NotATestLesson,
    Role,
    UnknownAnswer,
    attempts_left,
    grade,
    may_reveal,
    points_awarded,
    score_percent,
)
from learning.progress import Progress


def _accepted(question: QuestionRecord) -> list[str]:
    return list(json.loads(question.accepted_answers or "[]"))


def question_staff(question: QuestionRecord) -> QuestionStaffOut:
    return QuestionStaffOut(
        id=question.id,
        test_id=question.test_id,
        position=question.position,
        text=question.text,
        question_type=question.question_type,
        points=question.points,
        options=[OptionStaffOut.model_validate(o, from_attributes=True) for o in question.options],
        accepted_answers=_accepted(question),
    )


def question_learner(question: QuestionRecord) -> QuestionLearnerOut:
    return QuestionLearnerOut(
        id=question.id,
        position=question.position,
        text=question.text,
        question_type=question.question_type,
        points=question.points,
        options=[
            OptionLearnerOut(id=o.id, text=o.text, position=o.position) for o in question.options
        ],
    )


def _choice(question: QuestionRecord) -> Choice:
    return Choice(
        id=question.id,
        question_type=question.question_type,
        points=question.points,
        correct_option_ids=frozenset(o.id for o in question.options if o.is_correct),
        accepted_answers=tuple(_accepted(question)),
    )


def _saved(record: AttemptRecord) -> list[AnswerIn]:
    return [AnswerIn.model_validate(item) for item in json.loads(record.answers or "[]")]


def _late(record: AttemptRecord) -> bool:
    if record.deadline is None:
        return False
    return db_now() > record.deadline + timedelta(seconds=DEADLINE_GRACE_SECONDS)


def grade_answers(
    questions: list[QuestionRecord], answers: list[AnswerIn]
) -> tuple[Decimal, list[dict[str, Any]]]:
    """The score in percent and the full review (with the correct answers) to store."""
    given = {a.question_id: Answer(a.question_id, frozenset(a.option_ids), a.text) for a in answers}
    review, awarded = [], []
    for question in questions:
        choice = _choice(question)
        answer = given.get(question.id)
        points = points_awarded(choice, answer)
        awarded.append(points)
        review.append(
            {
                "question_id": question.id,
                "chosen_option_ids": sorted(answer.option_ids) if answer else [],
                "text": answer.text if answer else None,
                "points_awarded": str(points),
                "max_points": str(question.points),
                "correct_option_ids": sorted(choice.correct_option_ids),
                "accepted_answers": list(choice.accepted_answers),
            }
        )
    maximum = sum((q.points for q in questions), Decimal(0))
    return score_percent(awarded, maximum), review


def _test_fields(test: TestRecord, questions: list[QuestionRecord]) -> dict[str, Any]:
    """What staff and learners alike see of a test: its rules and its maximum."""
    return {
        "id": test.id,
        "lesson_id": test.lesson_id,
        "course_id": test.course_id,
        "title": test.title,
        "passing_score": test.passing_score,
        "max_attempts": test.max_attempts,
        "time_limit_seconds": test.time_limit_seconds,
        "grade_method": test.grade_method,
        "reveal": test.reveal,
        "max_points": sum((q.points for q in questions), Decimal(0)),
    }


class Quizzes(Progress):
    # ------------------------------------------------------------------ tests

    def put_test(
        self, caller: Caller, lesson_id: int, body: TestSettings
    ) -> tuple[TestStaffOut, bool]:
        lesson = self.content.lesson(lesson_id)
        self.require_staff(caller, lesson.course_id)
        if lesson.lesson_type != "test":
            raise NotATestLesson()
        test, created = self.quizzes.put_test(lesson, body.model_dump())
        return self._test_staff(test), created

    def get_test(self, caller: Caller, test_id: int) -> TestStaffOut | TestLearnerOut:
        test, role = self._visible_test(caller, test_id)
        if role == "staff":
            return self._test_staff(test)
        questions = self.quizzes.questions(test.id)
        scores = self._scores(test, caller.user_id)
        used = len(self.quizzes.attempts(test.id, caller.user_id))
        best = grade(test.grade_method, scores)
        return TestLearnerOut(
            **_test_fields(test, questions),
            question_count=len(questions),
            attempts_used=used,
            attempts_left=attempts_left(test.max_attempts, used),
            grade=best,
            passed=best is not None and best >= test.passing_score,
        )

    def _visible_test(self, caller: Caller, test_id: int) -> tuple[TestRecord, Role]:
        test = self.quizzes.test(test_id)
        _, role = self.visible_lesson(caller, test.lesson_id)
        return test, role

    def _test_staff(self, test: TestRecord) -> TestStaffOut:
        questions = self.quizzes.questions(test.id)
        return TestStaffOut(
            **_test_fields(test, questions), questions=[question_staff(q) for q in questions]
        )

    def _scores(self, test: TestRecord, user_id: str) -> list[Decimal]:
        return self.quizzes.submitted_scores([test.id], user_id).get(test.id, [])

    # ------------------------------------------------------------------ questions

    def add_question(
        self, caller: Caller, test_id: int, fields: QuestionFields
    ) -> QuestionStaffOut:
        test = self.quizzes.test(test_id)
        self.require_staff(caller, test.course_id)
        return question_staff(self.quizzes.add_question(test_id, fields))

    def update_question(
        self, caller: Caller, question_id: int, changes: dict[str, Any]
    ) -> QuestionStaffOut:
        question = self.quizzes.question(question_id)
        self.require_staff(caller, self.quizzes.test(question.test_id).course_id)

        def merge(record: QuestionRecord) -> QuestionFields:
            current = {
                "text": record.text,
                "question_type": record.question_type,
                "points": record.points,
                "options": [{"text": o.text, "is_correct": o.is_correct} for o in record.options],
                "accepted_answers": _accepted(record),
            }
            return QuestionFields.model_validate({**current, **changes})

        return question_staff(self.quizzes.update_question(question_id, merge))

    def delete_question(self, caller: Caller, question_id: int) -> None:
        question = self.quizzes.question(question_id)
        self.require_staff(caller, self.quizzes.test(question.test_id).course_id)
        self.quizzes.delete_question(question_id)

    def order_questions(
        self, caller: Caller, test_id: int, ids: list[int]
    ) -> list[QuestionStaffOut]:
        test = self.quizzes.test(test_id)
        self.require_staff(caller, test.course_id)
        return [question_staff(q) for q in self.quizzes.order_questions(test_id, ids)]

    # ------------------------------------------------------------------ attempts

    def start_attempt(self, caller: Caller, test_id: int) -> tuple[AttemptOut, bool]:
        """Start the next attempt, or return the open one; (attempt, started now)."""
        test, _ = self._visible_test(caller, test_id)
        questions = self.quizzes.questions(test.id)
        if not questions:
            raise EmptyTest()

        timed_out: list[AttemptRecord] = []

        def decide(existing: list[AttemptRecord]) -> AttemptRecord | bool:
            for record in existing:
                if record.submitted_at is None:
                    if not _late(record):
                        return record
                    self._finish(record, questions, test)  # time ran out while away
                    timed_out.append(record)
            return test.max_attempts is None or len(existing) < test.max_attempts

        record, started = self.quizzes.start_attempt(test, caller.user_id, decide)
        if timed_out:
            self.after_grading(caller.user_id, test)
        if record is None:
            raise NoAttemptsLeft()
        return self._attempt_out(record, test, questions), started

    def save_answers(self, caller: Caller, attempt_id: int, answers: list[AnswerIn]) -> AttemptOut:
        record, test, questions = self._own_attempt(caller, attempt_id)
        _check_answers(questions, answers)

        def change(attempt: AttemptRecord) -> None:
            if attempt.submitted_at is not None:
                raise AttemptClosed()
            if _late(attempt):
                raise DeadlinePassed()
            merged = {a.question_id: a for a in _saved(attempt)}
            merged.update({a.question_id: a for a in answers})
            attempt.answers = json.dumps(
                [a.model_dump() for a in merged.values()], ensure_ascii=False
            )

        saved = self.quizzes.write_attempt(attempt_id, test.course_id, caller.user_id, change)
        return self._attempt_out(saved, test, questions)

    def submit(self, caller: Caller, attempt_id: int) -> AttemptOut:
        record, test, questions = self._own_attempt(caller, attempt_id)

        if not questions:
            raise EmptyTest()  # every question was deleted meanwhile: nothing to grade yet
        late = []

        def change(attempt: AttemptRecord) -> None:
            if attempt.submitted_at is not None:
                raise AttemptClosed(details=[_result(attempt)])
            # Too late: the answers saved in time are graded, nothing sent now counts.
            late.append(_late(attempt))
            self._finish(attempt, questions, test)

        graded = self.quizzes.write_attempt(attempt_id, test.course_id, caller.user_id, change)
        self.after_grading(caller.user_id, test)
        if late[0]:
            raise DeadlinePassed(details=[_result(graded)])
        return self._attempt_out(graded, test, questions)

    def get_attempt(self, caller: Caller, attempt_id: int) -> AttemptOut:
        record = self.quizzes.attempt(attempt_id)
        test = self.quizzes.test(record.test_id)
        if record.user_id != caller.user_id:
            self._staff_or_missing(caller, test.course_id)
            return self._attempt_out(record, test, self.quizzes.questions(test.id), staff=True)
        self.visible_lesson(caller, test.lesson_id)
        return self._attempt_out(record, test, self.quizzes.questions(test.id))

    def my_attempts(self, caller: Caller, test_id: int) -> AttemptList:
        test, _ = self._visible_test(caller, test_id)
        records = self.quizzes.attempts(test.id, caller.user_id)
        scores = [r.score for r in records if r.submitted_at is not None and r.score is not None]
        return AttemptList(
            attempts=[
                AttemptSummary(
                    attempt_id=r.id,
                    attempt_no=r.attempt_no,
                    status="submitted" if r.submitted_at else "open",
                    started_at=r.started_at,
                    submitted_at=r.submitted_at,
                    score=r.score,
                    passed=r.passed,
                )
                for r in records
            ],
            attempts_left=attempts_left(test.max_attempts, len(records)),
            grade=grade(test.grade_method, scores),
        )

    def _own_attempt(
        self, caller: Caller, attempt_id: int
    ) -> tuple[AttemptRecord, TestRecord, list[QuestionRecord]]:
        record = self.quizzes.attempt(attempt_id)
        if record.user_id != caller.user_id:
            raise AttemptNotFound()  # someone else's attempt does not exist for this caller
        test = self.quizzes.test(record.test_id)
        self.visible_lesson(caller, test.lesson_id)
        return record, test, self.quizzes.questions(test.id)

    def _staff_or_missing(self, caller: Caller, course_id: int) -> None:
        try:
            self.require_staff(caller, course_id)
        except ApiError:
            raise AttemptNotFound() from None

    def _closed_attempts_left(self, test: TestRecord, user_id: str) -> int | None:
        """Attempts left once the open one is counted as not yet used: it can still be
        answered. Only after_all_attempts asks, so the other policies read nothing."""
        if test.reveal != "after_all_attempts":
            return None
        attempts = self.quizzes.attempts(test.id, user_id)
        closed = sum(attempt.submitted_at is not None for attempt in attempts)
        return attempts_left(test.max_attempts, closed)

    @staticmethod
    def _finish(attempt: AttemptRecord, questions: list[QuestionRecord], test: TestRecord) -> None:
        score, review = grade_answers(questions, _saved(attempt))
        attempt.score = score
        attempt.passed = score >= test.passing_score
        attempt.review = json.dumps(review, ensure_ascii=False)
        attempt.submitted_at = db_now()

    def _attempt_out(
        self,
        record: AttemptRecord,
        test: TestRecord,
        questions: list[QuestionRecord],
        *,
        staff: bool = False,
    ) -> AttemptOut:
        submitted = record.submitted_at is not None
        review = None
        if submitted and record.review:
            reveal = staff or may_reveal(
                test.reveal,
                submitted=True,
                attempts_remaining=self._closed_attempts_left(test, record.user_id),
            )
            review = [_review(item, reveal) for item in json.loads(record.review)]
        return AttemptOut(
            attempt_id=record.id,
            test_id=record.test_id,
            attempt_no=record.attempt_no,
            status="submitted" if submitted else "open",
            started_at=record.started_at,
            deadline=record.deadline,
            submitted_at=record.submitted_at,
            questions=[question_learner(q) for q in questions],
            answers=_saved(record),
            score=record.score,
            passed=record.passed,
            review=review,
        )


def _review(item: dict[str, Any], reveal: bool) -> QuestionReview:
    fields = {
        "question_id": item["question_id"],
        "chosen_option_ids": item["chosen_option_ids"],
        "text": item["text"],
        "points_awarded": Decimal(item["points_awarded"]),
        "max_points": Decimal(item["max_points"]),
    }
    if reveal:
        fields["correct_option_ids"] = item["correct_option_ids"]
        fields["accepted_answers"] = item["accepted_answers"]
    return QuestionReview.model_validate(fields)


def _result(attempt: AttemptRecord) -> dict[str, Any]:
    return {
        "attempt_id": attempt.id,
        "score": f"{attempt.score:.2f}" if attempt.score is not None else None,
        "passed": attempt.passed,
        "submitted_at": from_db(attempt.submitted_at).isoformat() if attempt.submitted_at else None,
    }


def _check_answers(questions: list[QuestionRecord], answers: list[AnswerIn]) -> None:
    """Every answer names a question of this test and, for choices, its own options."""
    options = {q.id: {o.id for o in q.options} for q in questions}
    kinds = {q.id: q.question_type for q in questions}
    seen: set[int] = set()
    for answer in answers:
        if answer.question_id not in options or answer.question_id in seen:
            raise UnknownAnswer()
        seen.add(answer.question_id)
        if not set(answer.option_ids) <= options[answer.question_id]:
            raise UnknownAnswer()
        if kinds[answer.question_id] == "short_text" and answer.option_ids:
            raise UnknownAnswer()
        if kinds[answer.question_id] != "short_text" and answer.text is not None:
            raise UnknownAnswer()
