"""The learning API: course content, tests (quizzes), attempts and progress.

Two views of a test exist on purpose. Staff (admins and the course's author) get
``*StaffOut`` models with every option's ``is_correct`` and the accepted answers; a
learner gets ``*LearnerOut`` models, which have no field that could carry them. What a
learner may see of the correct answers after submitting is decided by the test's
``reveal`` policy and travels only in :class:`QuestionReview`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_serializer,
    field_validator,
    model_validator,
)

from common.timeutil import from_db
from common.validation import QuerySchema, Schema, WholeNumber

PositiveId = Annotated[StrictInt, Field(ge=1, le=2**63 - 1), WholeNumber]
Title = Annotated[str, Field(min_length=1, max_length=200)]
LessonType = Literal["theory", "test", "practice"]
MediaType = Literal["video", "image", "pdf", "audio", "link"]
QuestionType = Literal["single", "multiple", "true_false", "short_text"]
GradeMethod = Literal["highest", "average", "first", "last"]
Reveal = Literal["never", "after_submit", "after_all_attempts"]

CONTENT_MAX_BYTES = 100 * 1024
MAX_OPTIONS = 20
MAX_QUESTIONS = 200
MAX_ACCEPTED_ANSWERS = 20
MAX_ORDERED_IDS = 1000
# Markdown is stored exactly as sent: no trimming, whatever the model's config says.
Content = Annotated[str, StringConstraints(strip_whitespace=False)]
Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=5, decimal_places=2)]
Points = Annotated[Decimal, Field(gt=0, le=1000, max_digits=6, decimal_places=2)]


def _two_places(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def _utc(value: datetime | None) -> str | None:
    return None if value is None else from_db(value).isoformat()


class PageQuery(QuerySchema):
    page: Annotated[int, Field(ge=1, le=100_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=100)] = 20


class Ordering(Schema):
    """Body of every ``PUT …/order``: the complete list of ids in their new order."""

    ids: Annotated[list[PositiveId], Field(min_length=1, max_length=MAX_ORDERED_IDS)]


# ----------------------------------------------------------------------------- modules


class ModuleCreate(Schema):
    title: Title
    published: StrictBool = False


class ModuleUpdate(Schema):
    title: Title | None = None
    published: StrictBool | None = None


class ModuleOut(BaseModel):
    id: int
    course_id: int
    title: str
    position: int
    published: bool


class ModuleList(BaseModel):
    modules: list[ModuleOut]


# ----------------------------------------------------------------------------- lessons


def _content_fits(value: str | None) -> str | None:
    if value is not None and len(value.encode("utf-8")) > CONTENT_MAX_BYTES:
        raise ValueError(f"content is limited to {CONTENT_MAX_BYTES} bytes of UTF-8")
    return value


class LessonCreate(Schema):
    title: Title
    lesson_type: LessonType
    content: Content = ""
    published: StrictBool = False
    estimated_minutes: Annotated[StrictInt, Field(ge=0, le=10_000), WholeNumber] | None = None

    _content = field_validator("content")(_content_fits)


class LessonUpdate(Schema):
    """Only the fields sent change; a lesson's type is fixed when it is created."""

    title: Title | None = None
    content: Content | None = None
    published: StrictBool | None = None
    estimated_minutes: Annotated[StrictInt, Field(ge=0, le=10_000), WholeNumber] | None = None

    _content = field_validator("content")(_content_fits)

    @model_validator(mode="after")
    def _no_nulls_but_minutes(self) -> LessonUpdate:
        for name in ("title", "content", "published"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class MediaOut(BaseModel):
    id: int
    lesson_id: int
    kind: Literal["link", "file"]
    media_type: MediaType
    title: str
    url: str  # the link itself, or the download route of a stored file
    content_type: str | None
    size_bytes: int | None
    position: int


class LessonOut(BaseModel):
    id: int
    module_id: int
    course_id: int
    title: str
    lesson_type: LessonType
    content: str
    position: int
    published: bool
    estimated_minutes: int | None
    media: list[MediaOut]
    test_id: int | None


class LessonList(BaseModel):
    lessons: list[LessonOut]


class MediaLink(Schema):
    url: Annotated[str, Field(min_length=9, max_length=2048, pattern=r"^https://[^\s]+$")]
    media_type: MediaType
    title: Title


# ----------------------------------------------------------------------------- outline


class OutlineLesson(BaseModel):
    id: int
    title: str
    lesson_type: LessonType
    position: int
    estimated_minutes: int | None


class OutlineModule(BaseModel):
    id: int
    title: str
    position: int
    lessons: list[OutlineLesson]


class Outline(BaseModel):
    course_id: int
    modules: list[OutlineModule]


# ----------------------------------------------------------------------------- tests


class TestSettings(Schema):
    """Body of ``PUT /api/lessons/<id>/test``."""

    title: Title
    passing_score: Percent
    max_attempts: Annotated[StrictInt, Field(ge=1, le=1000), WholeNumber] | None = None
    time_limit_seconds: Annotated[StrictInt, Field(ge=10, le=7 * 24 * 3600), WholeNumber] | None = (
        None
    )
    grade_method: GradeMethod = "highest"
    reveal: Reveal = "after_submit"


class OptionIn(Schema):
    text: Annotated[str, Field(min_length=1, max_length=1000)]
    is_correct: StrictBool


class QuestionFields(Schema):
    """A complete, valid question: create sends one, PATCH must merge into one again."""

    text: Annotated[str, Field(min_length=1, max_length=5000)]
    question_type: QuestionType
    points: Points
    options: Annotated[list[OptionIn], Field(max_length=MAX_OPTIONS)] = []
    accepted_answers: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=500)]],
        Field(max_length=MAX_ACCEPTED_ANSWERS),
    ] = []

    @model_validator(mode="after")
    def _answerable(self) -> QuestionFields:
        correct = sum(option.is_correct for option in self.options)
        if self.question_type == "short_text":
            if self.options or not self.accepted_answers:
                raise ValueError("a short_text question has accepted_answers and no options")
            return self
        if self.accepted_answers:
            raise ValueError("only a short_text question has accepted_answers")
        if self.question_type == "true_false" and len(self.options) != 2:
            raise ValueError("a true_false question has exactly two options")
        if len(self.options) < 2:
            raise ValueError("a choice question has at least two options")
        if self.question_type in ("single", "true_false") and correct != 1:
            raise ValueError(f"a {self.question_type} question has exactly one correct option")
        if self.question_type == "multiple" and correct < 1:
            raise ValueError("a multiple question has at least one correct option")
        return self


class QuestionUpdate(Schema):
    text: Annotated[str, Field(min_length=1, max_length=5000)] | None = None
    question_type: QuestionType | None = None
    points: Points | None = None
    options: Annotated[list[OptionIn], Field(max_length=MAX_OPTIONS)] | None = None
    accepted_answers: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=500)]],
            Field(max_length=MAX_ACCEPTED_ANSWERS),
        ]
        | None
    ) = None

    def changes(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class OptionStaffOut(BaseModel):
    id: int
    text: str
    is_correct: bool
    position: int


class OptionLearnerOut(BaseModel):
    id: int
    text: str
    position: int


class QuestionStaffOut(BaseModel):
    id: int
    test_id: int
    position: int
    text: str
    question_type: QuestionType
    points: Decimal
    options: list[OptionStaffOut]
    accepted_answers: list[str]

    _points = field_serializer("points")(lambda self, value: _two_places(value))


class QuestionLearnerOut(BaseModel):
    id: int
    position: int
    text: str
    question_type: QuestionType
    points: Decimal
    options: list[OptionLearnerOut]

    _points = field_serializer("points")(lambda self, value: _two_places(value))


class QuestionList(BaseModel):
    """A test's questions in their (new) order, as staff see them."""

    questions: list[QuestionStaffOut]


class TestStaffOut(BaseModel):
    id: int
    lesson_id: int
    course_id: int
    title: str
    passing_score: Decimal
    max_attempts: int | None
    time_limit_seconds: int | None
    grade_method: GradeMethod
    reveal: Reveal
    max_points: Decimal
    questions: list[QuestionStaffOut]

    _decimals = field_serializer("passing_score", "max_points")(
        lambda self, value: _two_places(value)
    )


class TestLearnerOut(BaseModel):
    """What a learner sees before an attempt: the rules, never the questions' answers."""

    id: int
    lesson_id: int
    course_id: int
    title: str
    passing_score: Decimal
    max_attempts: int | None
    time_limit_seconds: int | None
    grade_method: GradeMethod
    reveal: Reveal
    max_points: Decimal
    question_count: int
    attempts_used: int
    attempts_left: int | None
    grade: Decimal | None
    passed: bool

    _decimals = field_serializer("passing_score", "max_points", "grade")(
        lambda self, value: _two_places(value)
    )


# ----------------------------------------------------------------------------- attempts


class AnswerIn(Schema):
    question_id: PositiveId
    option_ids: Annotated[list[PositiveId], Field(max_length=MAX_OPTIONS)] = []
    text: Annotated[str, Field(max_length=500)] | None = None


class AnswersIn(Schema):
    answers: Annotated[list[AnswerIn], Field(max_length=MAX_QUESTIONS)]


class QuestionReview(BaseModel):
    """One question after submission. ``correct_option_ids`` and ``accepted_answers`` are
    set only when the test's reveal policy allows it."""

    question_id: int
    chosen_option_ids: list[int]
    text: str | None
    points_awarded: Decimal
    max_points: Decimal
    correct_option_ids: list[int] | None = None
    accepted_answers: list[str] | None = None

    _decimals = field_serializer("points_awarded", "max_points")(
        lambda self, value: _two_places(value)
    )


class AttemptOut(BaseModel):
    attempt_id: int
    test_id: int
    attempt_no: int
    status: Literal["open", "submitted"]
    started_at: datetime
    deadline: datetime | None
    submitted_at: datetime | None
    questions: list[QuestionLearnerOut]
    answers: list[AnswerIn]
    score: Decimal | None
    passed: bool | None
    review: list[QuestionReview] | None

    _moments = field_serializer("started_at", "deadline", "submitted_at")(
        lambda self, value: _utc(value)
    )
    _score = field_serializer("score")(lambda self, value: _two_places(value))


class AttemptSummary(BaseModel):
    attempt_id: int
    attempt_no: int
    status: Literal["open", "submitted"]
    started_at: datetime
    submitted_at: datetime | None
    score: Decimal | None
    passed: bool | None

    _moments = field_serializer("started_at", "submitted_at")(lambda self, value: _utc(value))
    _score = field_serializer("score")(lambda self, value: _two_places(value))


class AttemptList(BaseModel):
    attempts: list[AttemptSummary]
    attempts_left: int | None
    grade: Decimal | None

    _grade = field_serializer("grade")(lambda self, value: _two_places(value))


# ----------------------------------------------------------------------------- progress


class TestGrade(BaseModel):
    test_id: int
    lesson_id: int
    grade: Decimal | None
    passed: bool
    attempts: int

    _grade = field_serializer("grade")(lambda self, value: _two_places(value))


class CourseProgress(BaseModel):
    course_id: int
    completed_lesson_ids: list[int]
    percent: Decimal
    tests: list[TestGrade]
    completed_at: datetime | None
    last_activity_at: datetime | None

    _percent = field_serializer("percent")(lambda self, value: _two_places(value))
    _moments = field_serializer("completed_at", "last_activity_at")(lambda self, value: _utc(value))


class CoursePercent(BaseModel):
    course_id: int
    enrolment_id: int
    enrolment_status: str
    percent: Decimal
    completed_at: datetime | None
    last_activity_at: datetime | None

    _percent = field_serializer("percent")(lambda self, value: _two_places(value))
    _moments = field_serializer("completed_at", "last_activity_at")(lambda self, value: _utc(value))


class ProgressList(BaseModel):
    courses: list[CoursePercent]
    page: int
    per_page: int
    total: int


class LearnerPercent(BaseModel):
    user_id: str
    enrolment_id: int
    percent: Decimal
    completed_at: datetime | None
    last_activity_at: datetime | None

    _percent = field_serializer("percent")(lambda self, value: _two_places(value))
    _moments = field_serializer("completed_at", "last_activity_at")(lambda self, value: _utc(value))


class LearnerProgressList(BaseModel):
    learners: list[LearnerPercent]
    page: int
    per_page: int
    total: int
