"""What every part of the learning service shares: its stores, the other services, and
who may do what in a course."""

from __future__ import annotations

import logging

from common.identity import Caller
from learning.adapters.content import ContentRepository
from learning.adapters.progress import ProgressRepository
from learning.adapters.quizzes import QuizRepository
from learning.adapters.storage import MediaStorage
from learning.adapters.tables import LessonRecord, ModuleRecord
from learning.adapters.upstreams import CoursesClient, EnrolmentsClient
from learning.domain import (
    CourseInfo,
    CourseNotFound,
    LessonNotFound,
    NotCourseAuthor,
    NotEnrolled,
    Role,
)

log = logging.getLogger("learning.service")


class ServiceBase:
    def __init__(
        self,
        *,
        content: ContentRepository,
        quizzes: QuizRepository,
        progress: ProgressRepository,
        courses: CoursesClient,
        enrolments: EnrolmentsClient,
        storage: MediaStorage,
        media_max_bytes: int,
    ) -> None:
        self.content = content
        self.quizzes = quizzes
        self.progress = progress
        self.courses = courses
        self.enrolments = enrolments
        self.storage = storage
        self.media_max_bytes = media_max_bytes

    # ------------------------------------------------------------------ who may do what

    @staticmethod
    def _is_staff(caller: Caller | None, course: CourseInfo) -> bool:
        """Admins, and the instructor who authored the course."""
        if caller is None:
            return False
        if caller.is_admin:
            return True
        return caller.role == "instructor" and caller.user_id == course.author_id

    def require_staff(self, caller: Caller, course_id: int) -> CourseInfo:
        course = self.courses.get(course_id)
        if self._is_staff(caller, course):
            return course
        if course.status == "draft":
            raise CourseNotFound()
        raise NotCourseAuthor()

    def reader_role(self, caller: Caller, course_id: int) -> Role:
        """Staff, or a learner whose live enrolment lets them learn (paid, or free)."""
        course = self.courses.get(course_id)
        if self._is_staff(caller, course):
            return "staff"
        if course.status == "draft":
            raise CourseNotFound()
        if self.enrolments.access(caller.user_id, course_id) is None:
            raise NotEnrolled()
        return "learner"

    def visible_lesson(self, caller: Caller, lesson_id: int) -> tuple[LessonRecord, Role]:
        """The lesson and the caller's role; unpublished ones do not exist for learners."""
        lesson = self.content.lesson(lesson_id)
        role = self.reader_role(caller, lesson.course_id)
        if role == "learner" and not self._published(lesson):
            raise LessonNotFound()
        return lesson, role

    def _published(self, lesson: LessonRecord, module: ModuleRecord | None = None) -> bool:
        if not lesson.published:
            return False
        module = module or self.content.module(lesson.module_id)
        return module.published
