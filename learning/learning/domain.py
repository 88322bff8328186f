"""Learning rules, independent of HTTP and storage: grading, grades and progress."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from common.errors import ApiError, Conflict, Forbidden, NotFound

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
# Answers count up to this long after the deadline: the last save may be in flight.
DEADLINE_GRACE_SECONDS = 10
LIVE = ("active", "completed")

Role = Literal["staff", "learner"]


def two_places(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class CourseInfo:
    id: int
    author_id: str | None
    status: str
    price: Decimal


@dataclass(frozen=True, slots=True)
class Choice:
    """A question as the grader sees it."""

    id: int
    question_type: str
    points: Decimal
    correct_option_ids: frozenset[int]
    accepted_answers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Answer:
    question_id: int
    option_ids: frozenset[int]
    text: str | None


def fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def points_awarded(question: Choice, answer: Answer | None) -> Decimal:
    """Single, true/false and short text are all or nothing; multiple choice gives
    1/n of the points per correct option chosen and takes 1/n per wrong one (n = the
    correct options), never below zero."""
    if answer is None:
        return Decimal(0)
    if question.question_type == "short_text":
        accepted = {fold(text) for text in question.accepted_answers}
        return (
            question.points
            if answer.text is not None and fold(answer.text) in accepted
            else Decimal(0)
        )
    if question.question_type == "multiple":
        correct = question.correct_option_ids
        right = len(answer.option_ids & correct)
        wrong = len(answer.option_ids - correct)
        share = Decimal(max(0, right - wrong)) / Decimal(len(correct))
        return two_places(question.points * share)
    return question.points if answer.option_ids == question.correct_option_ids else Decimal(0)


def score_percent(awarded: Iterable[Decimal], maximum: Decimal) -> Decimal:
    if maximum <= 0:
        return Decimal(0)
    return two_places(sum(awarded, Decimal(0)) * HUNDRED / maximum)


def grade(method: str, scores: Sequence[Decimal]) -> Decimal | None:
    """The test's grade from the submitted attempts' scores, oldest first."""
    if not scores:
        return None
    if method == "average":
        return two_places(sum(scores, Decimal(0)) / len(scores))
    if method == "first":
        return scores[0]
    if method == "last":
        return scores[-1]
    return max(scores)


def percent(completed: int, total: int) -> Decimal:
    if total <= 0:
        return Decimal(0)
    return two_places(Decimal(min(completed, total)) * HUNDRED / Decimal(total))


def attempts_left(max_attempts: int | None, used: int) -> int | None:
    return None if max_attempts is None else max(0, max_attempts - used)


def may_reveal(reveal: str, *, submitted: bool, attempts_remaining: int | None) -> bool:
    """Whether a learner may see the correct answers of a submitted attempt."""
    if not submitted or reveal == "never":
        return False
    if reveal == "after_submit":
        return True
    return attempts_remaining == 0  # after_all_attempts; unlimited attempts never end


# ----------------------------------------------------------------------------- errors


class CourseNotFound(NotFound):
    code, message = "course_not_found", "The course was not found."


class ModuleNotFound(NotFound):
    code, message = "module_not_found", "The module was not found."


class LessonNotFound(NotFound):
    code, message = "lesson_not_found", "The lesson was not found."


class MediaNotFound(NotFound):
    code, message = "media_not_found", "The media was not found."


class TestNotFound(NotFound):
    code, message = "test_not_found", "The test was not found."


class QuestionNotFound(NotFound):
    code, message = "question_not_found", "The question was not found."


class AttemptNotFound(NotFound):
    code, message = "attempt_not_found", "The attempt was not found."


class NotCourseAuthor(Forbidden):
    code, message = "not_course_author", "Only the course's author or an admin may do this."


class NotEnrolled(Forbidden):
    code, message = "not_enrolled", "A paid enrolment in this course is needed to learn in it."


class BadOrdering(ApiError):
    status, code = 422, "bad_ordering"
    message = "Send every id of the list exactly once, in the new order."


class NotATestLesson(Conflict):
    code, message = "not_a_test_lesson", "Only a lesson of type test has a test."


class TestLessonCompletion(Conflict):
    code, message = "test_lesson_completion", "A test lesson completes when its test is passed."


class NoAttemptsLeft(Conflict):
    code, message = "no_attempts_left", "Every attempt of this test is used."


class EmptyTest(Conflict):
    code, message = "test_has_no_questions", "The test has no questions yet."


class AttemptClosed(Conflict):
    code, message = "attempt_closed", "The attempt is already submitted."


class DeadlinePassed(Conflict):
    code, message = "deadline_passed", "The attempt's time is over."


class TooManyQuestions(ApiError):
    status, code, message = 400, "too_many_questions", "A test holds at most 200 questions."


class UnknownAnswer(ApiError):
    status, code = 400, "unknown_answer"
    message = "An answer names a question or option that is not in this test."


class UnsupportedMedia(ApiError):
    status, code = 415, "unsupported_media_type"
    message = "Upload a PDF, PNG, JPEG, MP3 or MP4 file."


class MediaTooLarge(ApiError):
    status, code, message = 413, "payload_too_large", "The file is too large."


# ----------------------------------------------------------------------------- media

# What a file's first bytes say it is: (media_type, content type). The name and the
# client's Content-Type are never trusted.
_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"%PDF-", 0, "pdf", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", 0, "image", "image/png"),
    (b"\xff\xd8\xff", 0, "image", "image/jpeg"),
    (b"ID3", 0, "audio", "audio/mpeg"),
    (b"ftyp", 4, "video", "video/mp4"),
)
_MP3_FRAME_SYNC = (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")


def sniff(head: bytes) -> tuple[str, str] | None:
    """(media_type, content_type) of a PDF, PNG, JPEG, MP3 or MP4, else None."""
    for signature, offset, media_type, content_type in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return media_type, content_type
    if head[:2] in _MP3_FRAME_SYNC:
        return "audio", "audio/mpeg"
    return None
