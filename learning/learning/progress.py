"""Completions and progress. A learner at 100 % has their enrolment completed in the
enrolments service (idempotent there, and told again later if it was away)."""

from __future__ import annotations

from common.errors import ApiError
from common.identity import Caller
from contracts.learning import (
    CoursePercent,
    CourseProgress,
    LearnerPercent,
    LearnerProgressList,
    ProgressList,
    TestGrade,
)
from learning.adapters.tables import TestRecord
from learning.content import Content
from learning.domain import TestLessonCompletion, grade, percent
from learning.service_base import log


class Progress(Content):
    def complete_lesson(self, caller: Caller, lesson_id: int) -> CourseProgress:
        lesson, _ = self.visible_lesson(caller, lesson_id)
        if lesson.lesson_type == "test":
            raise TestLessonCompletion()
        self.progress.complete(caller.user_id, lesson.course_id, lesson.id)
        self.check_completion(caller.user_id, lesson.course_id)
        return self.course_progress(caller, lesson.course_id)

    def uncomplete_lesson(self, caller: Caller, lesson_id: int) -> CourseProgress:
        lesson, _ = self.visible_lesson(caller, lesson_id)
        if lesson.lesson_type == "test":
            raise TestLessonCompletion()
        self.progress.uncomplete(caller.user_id, lesson.course_id, lesson.id)
        return self.course_progress(caller, lesson.course_id)

    def after_grading(self, user_id: str, test: TestRecord) -> None:
        """A test lesson completes once the learner's grade by the test's method passes."""
        scores = self.quizzes.submitted_scores([test.id], user_id).get(test.id, [])
        result = grade(test.grade_method, scores)
        if result is None or result < test.passing_score:
            # With the last or average grade a later attempt can undo a pass: the lesson
            # is then no longer complete (an enrolment already completed stays so).
            self.progress.uncomplete(user_id, test.course_id, test.lesson_id)
            return
        self.progress.complete(user_id, test.course_id, test.lesson_id)
        self.check_completion(user_id, test.course_id)

    def check_completion(self, user_id: str, course_id: int) -> None:
        total = self.progress.published_counts([course_id]).get(course_id, 0)
        done = self.progress.completed_counts_by_course(user_id, [course_id]).get(course_id, 0)
        if total == 0 or done < total:
            return
        if not self.progress.finished(user_id, course_id):
            return
        try:
            told = self.enrolments.complete(user_id, course_id)
        except ApiError as exc:
            # Told again on the learner's next progress read or completion.
            log.warning("enrolment_completion_deferred", extra={"error": exc.code})
            return
        if told:
            self.progress.enrolment_told(user_id, course_id)

    def course_progress(self, caller: Caller, course_id: int) -> CourseProgress:
        self.reader_role(caller, course_id)
        published = set(self.progress.published_lesson_ids(course_id))
        completed = self.progress.completed_lesson_ids(caller.user_id, course_id)
        share = percent(len(completed), len(published))
        row = self.progress.row(caller.user_id, course_id)
        if share == 100 and row is not None and not row.enrolment_completed:
            self.check_completion(caller.user_id, course_id)
        tests = [t for t in self.quizzes.tests_of_course(course_id) if t.lesson_id in published]
        scores = self.quizzes.submitted_scores([t.id for t in tests], caller.user_id)
        grades = []
        for test in tests:
            result = grade(test.grade_method, scores.get(test.id, []))
            grades.append(
                TestGrade(
                    test_id=test.id,
                    lesson_id=test.lesson_id,
                    grade=result,
                    passed=result is not None and result >= test.passing_score,
                    attempts=len(scores.get(test.id, [])),
                )
            )
        return CourseProgress(
            course_id=course_id,
            completed_lesson_ids=completed,
            percent=share,
            tests=grades,
            # Finished means finished now: a lesson published since lowers it again.
            completed_at=row.completed_at if row is not None and share == 100 else None,
            last_activity_at=row.last_activity_at if row is not None else None,
        )

    def my_progress(self, caller: Caller, page: int, per_page: int) -> ProgressList:
        listing = self.enrolments.by_user(caller.user_id, page, per_page)
        enrolments = listing.get("enrolments", [])
        course_ids = [int(e["course_id"]) for e in enrolments]
        totals = self.progress.published_counts(course_ids)
        done = self.progress.completed_counts_by_course(caller.user_id, course_ids)
        rows = self.progress.rows_for_user(caller.user_id, course_ids)
        courses = []
        for enrolment in enrolments:
            course_id = int(enrolment["course_id"])
            share = percent(done.get(course_id, 0), totals.get(course_id, 0))
            row = rows.get(course_id)
            courses.append(
                CoursePercent(
                    course_id=course_id,
                    enrolment_id=int(enrolment["enrolment_id"]),
                    enrolment_status=str(enrolment["status"]),
                    percent=share,
                    completed_at=row.completed_at if row and share == 100 else None,
                    last_activity_at=row.last_activity_at if row else None,
                )
            )
        return ProgressList(
            courses=courses, page=page, per_page=per_page, total=int(listing.get("total", 0))
        )

    def learners(
        self, caller: Caller, course_id: int, page: int, per_page: int
    ) -> LearnerProgressList:
        self.require_staff(caller, course_id)
        listing = self.enrolments.learners(course_id, page, per_page)
        learners = listing.get("learners", [])
        user_ids = [str(learner["user_id"]) for learner in learners]
        total = self.progress.published_counts([course_id]).get(course_id, 0)
        done = self.progress.completed_counts_by_user(course_id, user_ids)
        rows = self.progress.rows_for_course(course_id, user_ids)
        out = []
        for learner in learners:
            user_id = str(learner["user_id"])
            share = percent(done.get(user_id, 0), total)
            row = rows.get(user_id)
            out.append(
                LearnerPercent(
                    user_id=user_id,
                    enrolment_id=int(learner["enrolment_id"]),
                    percent=share,
                    completed_at=row.completed_at if row and share == 100 else None,
                    last_activity_at=row.last_activity_at if row else None,
                )
            )
        return LearnerProgressList(
            learners=out, page=page, per_page=per_page, total=int(listing.get("total", 0))
        )
