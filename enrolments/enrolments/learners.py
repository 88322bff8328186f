"""What the learning service needs of enrolments (called with the internal key, no caller
identity): access to a course, its learners, a user's courses, and completion."""

from __future__ import annotations

from dataclasses import dataclass

from enrolments.adapters.learners import LearnerRepository
from enrolments.adapters.tables import EnrolmentRecord
from enrolments.domain import Page, may_learn


@dataclass(frozen=True)
class Access:
    enrolment_id: int
    status: str
    payment_status: str
    may_learn: bool


class LearnerService:
    def __init__(self, repository: LearnerRepository) -> None:
        self.repository = repository

    def access(self, user_id: str, course_id: int) -> Access:
        record = self.repository.live(user_id, course_id)
        return Access(
            enrolment_id=record.id,
            status=record.status,
            payment_status=record.payment_status,
            may_learn=may_learn(record.payment_status, record.price),
        )

    def learners(self, course_id: int, page: Page) -> tuple[list[EnrolmentRecord], int]:
        return self.repository.of_course(course_id, page)

    def by_user(self, user_id: str, page: Page) -> tuple[list[EnrolmentRecord], int]:
        return self.repository.of_user(user_id, page)

    def complete(self, user_id: str, course_id: int) -> EnrolmentRecord:
        return self.repository.complete(user_id, course_id)
