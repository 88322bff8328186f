"""Public learning routes (course content, tests, attempts, progress), forwarded to the
learning service.

Every route needs a logged-in caller except the course outline. Who may do what
(admins and a course's author edit its content; enrolled learners read it and take its
tests) is the learning service's decision: the gateway checks the token, validates the
body with the service's own contract model and forwards the caller's identity.
"""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, Response, current_app, request
from pydantic import Field, RootModel

from common.errors import ApiError
from common.validation import Schema, parse_body, parse_query
from contracts.learning import (
    AnswersIn,
    AttemptList,
    AttemptOut,
    CourseProgress,
    LearnerProgressList,
    LessonCreate,
    LessonList,
    LessonOut,
    LessonUpdate,
    MediaLink,
    MediaOut,
    MediaType,
    ModuleCreate,
    ModuleList,
    ModuleOut,
    ModuleUpdate,
    Ordering,
    Outline,
    PageQuery,
    ProgressList,
    QuestionFields,
    QuestionList,
    QuestionStaffOut,
    QuestionUpdate,
    TestLearnerOut,
    TestSettings,
    TestStaffOut,
)
from gateway.adapters.upstream import Upstream
from gateway.http.guards import current_caller, login_optional, login_required
from gateway.openapi import Link, documented

TAG = "learning"
# An upload of up to MEDIA_MAX_BYTES (20 MiB, the learning service's limit) plus the
# multipart framing and fields. nginx lets exactly this much through on the upload path.
MEDIA_BODY_MAX_BYTES = 21 * 1024 * 1024
MULTIPART = "multipart/form-data"
# What a download answer carries besides its body, relayed as the service set it.
DOWNLOAD_HEADERS = (
    "Content-Disposition",
    "Content-Length",
    "X-Content-Type-Options",
    "Cache-Control",
)


MODULE_ID = {"module_id": "$response.body#/id"}
LESSON_ID = {"lesson_id": "$response.body#/id"}
TEST_ID = {"test_id": "$response.body#/id"}
QUESTION_ID = {"question_id": "$response.body#/id"}
ATTEMPT_ID = {"attempt_id": "$response.body#/attempt_id"}
MEDIA_ID = {"media_id": "$response.body#/id"}
# A list reorder names every id of the list exactly once, which no schema can check.
BAD_ORDERING = {422: "the ids are not exactly the list's ids, each once (bad_ordering)"}
# Which options and accepted answers a question takes depends on its type.
QUESTION_SHAPE = {400: "the options or accepted answers do not fit the question type"}


class MediaUpload(Schema):
    """``POST /api/lessons/<id>/media`` as ``multipart/form-data``: one ``file`` part and,
    optionally, its ``media_type`` (else read from the file's first bytes, which must agree
    with it anyway) and a ``title`` (else the file's name)."""

    file: Annotated[bytes, Field(description="The file itself (at most 20 MiB).")]
    media_type: MediaType | None = None
    title: Annotated[str, Field(max_length=200)] | None = None


class TestView(RootModel[TestStaffOut | TestLearnerOut]):
    """Staff (admins, the course's author) get the questions with their answers; a
    learner gets the rules and their own standing, never the answers."""


blueprint = Blueprint("gateway_learning", __name__, url_prefix="/api")


def _learning() -> Upstream:
    return current_app.extensions["container"].learning()


def _forward(method: str, path: str) -> Response:
    """A call without a body or a query string."""
    return _learning().forward(method, path, caller=current_caller())


def _forward_without_body(method: str, path: str) -> Response:
    """Starting or submitting takes nothing from the client — no score, no answers: a body
    other than nothing or ``{}`` is a 400 here, before anything is forwarded."""
    if request.get_data(cache=True).strip() not in (b"", b"{}"):
        raise ApiError("This request takes no body.", code="validation_error")
    return _forward(method, path)


def _forward_query(method: str, path: str) -> Response:
    """A call with the query string the route has validated, as the client sent it."""
    return _learning().forward(
        method, path, caller=current_caller(), params=request.query_string.decode()
    )


def _forward_body(method: str, path: str) -> Response:
    """A call with the JSON body the route has validated."""
    return _learning().forward(method, path, caller=current_caller(), content=request.get_data())


# ----------------------------------------------------------------------------- modules


@blueprint.get("/course/<int:course_id>/modules")
@documented(
    "List a course's modules",
    tag=TAG,
    auth="user",
    responses={200: ModuleList},
    errors=(403, 404),
)
@login_required
def list_modules(course_id: int) -> Response:
    return _forward("GET", f"/courses/{course_id}/modules")


@blueprint.post("/course/<int:course_id>/modules")
@documented(
    "Add a module to a course (admin or the course's author)",
    tag=TAG,
    auth="user",
    body=ModuleCreate,
    responses={201: ModuleOut},
    errors=(403, 404, 409),
    links={
        "UpdateModule": Link("PATCH /api/modules/{module_id}", MODULE_ID),
        "AddLesson": Link("POST /api/modules/{module_id}/lessons", MODULE_ID),
        "DeleteModule": Link("DELETE /api/modules/{module_id}", MODULE_ID),
    },
    example={"title": "Getting started", "published": False},
)
@login_required
def create_module(course_id: int) -> Response:
    parse_body(ModuleCreate)
    return _forward_body("POST", f"/courses/{course_id}/modules")


@blueprint.put("/course/<int:course_id>/modules/order")
@documented(
    "Reorder a course's modules (every module id, in the new order)",
    tag=TAG,
    auth="user",
    body=Ordering,
    responses={200: ModuleList},
    errors=(403, 404, 409),
    valid_request_errors=BAD_ORDERING,
    example={"ids": [3, 1, 2]},
)
@login_required
def order_modules(course_id: int) -> Response:
    parse_body(Ordering)
    return _forward_body("PUT", f"/courses/{course_id}/modules/order")


@blueprint.patch("/modules/<int:module_id>")
@documented(
    "Update a module (only the fields sent)",
    tag=TAG,
    auth="user",
    body=ModuleUpdate,
    responses={200: ModuleOut},
    errors=(403, 404, 409),
    example={"published": True},
)
@login_required
def update_module(module_id: int) -> Response:
    parse_body(ModuleUpdate)
    return _forward_body("PATCH", f"/modules/{module_id}")


@blueprint.delete("/modules/<int:module_id>")
@documented(
    "Delete a module and its lessons",
    tag=TAG,
    auth="user",
    responses={204: None},
    errors=(403, 404, 409),
)
@login_required
def delete_module(module_id: int) -> Response:
    return _forward("DELETE", f"/modules/{module_id}")


# ----------------------------------------------------------------------------- lessons


@blueprint.post("/modules/<int:module_id>/lessons")
@documented(
    "Add a lesson to a module",
    tag=TAG,
    auth="user",
    body=LessonCreate,
    responses={201: LessonOut},
    errors=(403, 404, 409),
    links={
        "GetLesson": Link("GET /api/lessons/{lesson_id}", LESSON_ID),
        "UpdateLesson": Link("PATCH /api/lessons/{lesson_id}", LESSON_ID),
        "AddMedia": Link("POST /api/lessons/{lesson_id}/media", LESSON_ID),
        "PutTest": Link("PUT /api/lessons/{lesson_id}/test", LESSON_ID),
        "Complete": Link("PUT /api/lessons/{lesson_id}/completion", LESSON_ID),
        "DeleteLesson": Link("DELETE /api/lessons/{lesson_id}", LESSON_ID),
    },
    example={"title": "Installing Python", "lesson_type": "theory", "content": "# Install"},
)
@login_required
def create_lesson(module_id: int) -> Response:
    parse_body(LessonCreate)
    return _forward_body("POST", f"/modules/{module_id}/lessons")


@blueprint.put("/modules/<int:module_id>/lessons/order")
@documented(
    "Reorder a module's lessons (every lesson id, in the new order)",
    tag=TAG,
    auth="user",
    body=Ordering,
    responses={200: LessonList},
    errors=(403, 404, 409),
    valid_request_errors=BAD_ORDERING,
    example={"ids": [2, 1]},
)
@login_required
def order_lessons(module_id: int) -> Response:
    parse_body(Ordering)
    return _forward_body("PUT", f"/modules/{module_id}/lessons/order")


@blueprint.get("/lessons/<int:lesson_id>")
@documented(
    "Get a lesson with its media",
    tag=TAG,
    auth="user",
    responses={200: LessonOut},
    errors=(403, 404),
)
@login_required
def get_lesson(lesson_id: int) -> Response:
    return _forward("GET", f"/lessons/{lesson_id}")


@blueprint.patch("/lessons/<int:lesson_id>")
@documented(
    "Update a lesson (only the fields sent; its type is fixed)",
    tag=TAG,
    auth="user",
    body=LessonUpdate,
    responses={200: LessonOut},
    errors=(403, 404, 409),
    example={"content": "# Install\n\nUse the installer from python.org."},
)
@login_required
def update_lesson(lesson_id: int) -> Response:
    parse_body(LessonUpdate)
    return _forward_body("PATCH", f"/lessons/{lesson_id}")


@blueprint.delete("/lessons/<int:lesson_id>")
@documented("Delete a lesson", tag=TAG, auth="user", responses={204: None}, errors=(403, 404, 409))
@login_required
def delete_lesson(lesson_id: int) -> Response:
    return _forward("DELETE", f"/lessons/{lesson_id}")


# ----------------------------------------------------------------------------- media


def _validate_upload() -> None:
    """The form of a multipart upload: one ``file`` part, an optional ``media_type`` and
    ``title``, nothing else (the bytes themselves are judged by the learning service)."""
    fields: dict[str, object] = {}
    for name in request.form:
        values = request.form.getlist(name)
        fields[name] = values[0] if len(values) == 1 else values
    for name in request.files:
        files = request.files.getlist(name)
        # Only the part's presence is checked here: an empty stand-in, not the bytes.
        fields[name] = b"" if len(files) == 1 else [b""] * len(files)
    MediaUpload.model_validate(fields)


@blueprint.post("/lessons/<int:lesson_id>/media")
@documented(
    "Attach media to a lesson: a link (JSON) or an uploaded file (multipart, up to 20 MiB)",
    tag=TAG,
    auth="user",
    body=MediaLink,
    form=MediaUpload,
    responses={201: MediaOut},
    errors=(403, 404, 409),
    valid_request_errors={
        415: "the file is not a PDF, PNG, JPEG, MP3 or MP4 (by its first bytes), or not of "
        "the media_type sent"
    },
    links={
        "GetMedia": Link("GET /api/media/{media_id}", MEDIA_ID),
        "DeleteMedia": Link("DELETE /api/media/{media_id}", MEDIA_ID),
    },
    example={"url": "https://example.org/intro.mp4", "media_type": "video", "title": "Intro"},
)
@login_required
def add_media(lesson_id: int) -> Response:
    path = f"/lessons/{lesson_id}/media"
    if request.mimetype == MULTIPART:
        request.max_content_length = MEDIA_BODY_MAX_BYTES
        raw = request.get_data(cache=True)  # first: the form is then parsed from this copy
        _validate_upload()
        return _learning().forward(
            "POST",
            path,
            caller=current_caller(),
            content=raw,
            content_type=request.headers["Content-Type"],
        )
    if not request.is_json:
        raise ApiError(
            "The body must be JSON (a link) or multipart/form-data (a file).",
            code="unsupported_media_type",
            status=415,
        )
    parse_body(MediaLink)
    return _forward_body("POST", path)


@blueprint.get("/media/<int:media_id>")
@documented(
    "Download a stored media file (a link's media answers its JSON description)",
    tag=TAG,
    auth="user",
    responses={200: MediaOut},
    files=(200,),
    errors=(403, 404),
)
@login_required
def download_media(media_id: int) -> Response:
    response = _learning().forward(
        "GET", f"/media/{media_id}", caller=current_caller(), passed_headers=DOWNLOAD_HEADERS
    )
    # Never let a browser guess a type for a user's upload, whatever the service said.
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


@blueprint.delete("/media/<int:media_id>")
@documented(
    "Remove media from its lesson", tag=TAG, auth="user", responses={204: None}, errors=(403, 404)
)
@login_required
def delete_media(media_id: int) -> Response:
    return _forward("DELETE", f"/media/{media_id}")


# ----------------------------------------------------------------------------- outline


@blueprint.get("/course/<int:course_id>/outline")
@documented(
    "A course's published modules and lessons (titles only)",
    tag=TAG,
    auth="optional",
    responses={200: Outline},
    errors=(404,),
)
@login_optional
def course_outline(course_id: int) -> Response:
    return _forward("GET", f"/courses/{course_id}/outline")


# ----------------------------------------------------------------------------- tests


@blueprint.put("/lessons/<int:lesson_id>/test")
@documented(
    "Create or update the test of a test lesson",
    tag=TAG,
    auth="user",
    body=TestSettings,
    responses={200: TestStaffOut, 201: TestStaffOut},
    errors=(403, 404, 409),
    links={
        "GetTest": Link("GET /api/tests/{test_id}", TEST_ID),
        "AddQuestion": Link("POST /api/tests/{test_id}/questions", TEST_ID),
        "StartAttempt": Link("POST /api/tests/{test_id}/attempts", TEST_ID),
        "MyAttempts": Link("GET /api/tests/{test_id}/attempts/mine", TEST_ID),
    },
    example={"title": "Check yourself", "passing_score": "60.00", "max_attempts": 3},
)
@login_required
def put_test(lesson_id: int) -> Response:
    parse_body(TestSettings)
    return _forward_body("PUT", f"/lessons/{lesson_id}/test")


@blueprint.get("/tests/<int:test_id>")
@documented(
    "Get a test: with its questions and answers for staff, its rules and your standing "
    "for a learner",
    tag=TAG,
    auth="user",
    responses={200: TestView},
    errors=(403, 404),
)
@login_required
def get_test(test_id: int) -> Response:
    return _forward("GET", f"/tests/{test_id}")


@blueprint.post("/tests/<int:test_id>/questions")
@documented(
    "Add a question to a test",
    tag=TAG,
    auth="user",
    body=QuestionFields,
    responses={201: QuestionStaffOut},
    errors=(403, 404, 409),
    valid_request_errors=QUESTION_SHAPE,
    links={
        "UpdateQuestion": Link("PATCH /api/questions/{question_id}", QUESTION_ID),
        "DeleteQuestion": Link("DELETE /api/questions/{question_id}", QUESTION_ID),
    },
    example={
        "text": "Which of these is a list?",
        "question_type": "single",
        "points": "1.00",
        "options": [
            {"text": "[1, 2]", "is_correct": True},
            {"text": "(1, 2)", "is_correct": False},
        ],
    },
)
@login_required
def create_question(test_id: int) -> Response:
    parse_body(QuestionFields)
    return _forward_body("POST", f"/tests/{test_id}/questions")


@blueprint.put("/tests/<int:test_id>/questions/order")
@documented(
    "Reorder a test's questions (every question id, in the new order)",
    tag=TAG,
    auth="user",
    body=Ordering,
    responses={200: QuestionList},
    errors=(403, 404, 409),
    valid_request_errors=BAD_ORDERING,
    example={"ids": [2, 1]},
)
@login_required
def order_questions(test_id: int) -> Response:
    parse_body(Ordering)
    return _forward_body("PUT", f"/tests/{test_id}/questions/order")


@blueprint.patch("/questions/<int:question_id>")
@documented(
    "Update a question (the result must still be a complete, valid question)",
    tag=TAG,
    auth="user",
    body=QuestionUpdate,
    responses={200: QuestionStaffOut},
    errors=(403, 404, 409),
    valid_request_errors={400: QUESTION_SHAPE[400] + " (once merged into the stored question)"},
    example={"points": "2.00"},
)
@login_required
def update_question(question_id: int) -> Response:
    parse_body(QuestionUpdate)
    return _forward_body("PATCH", f"/questions/{question_id}")


@blueprint.delete("/questions/<int:question_id>")
@documented(
    "Delete a question", tag=TAG, auth="user", responses={204: None}, errors=(403, 404, 409)
)
@login_required
def delete_question(question_id: int) -> Response:
    return _forward("DELETE", f"/questions/{question_id}")


# ----------------------------------------------------------------------------- attempts


@blueprint.post("/tests/<int:test_id>/attempts")
@documented(
    "Start an attempt (201), or get the attempt still open (200)",
    tag=TAG,
    auth="user",
    responses={201: AttemptOut, 200: AttemptOut},
    errors=(403, 404, 409),
    links={
        "GetAttempt": Link("GET /api/attempts/{attempt_id}", ATTEMPT_ID),
        "SaveAnswers": Link("PUT /api/attempts/{attempt_id}/answers", ATTEMPT_ID),
        "Submit": Link("POST /api/attempts/{attempt_id}/submit", ATTEMPT_ID),
    },
)
@login_required
def start_attempt(test_id: int) -> Response:
    return _forward_without_body("POST", f"/tests/{test_id}/attempts")


@blueprint.get("/tests/<int:test_id>/attempts/mine")
@documented(
    "Your attempts at a test, with your grade",
    tag=TAG,
    auth="user",
    responses={200: AttemptList},
    errors=(403, 404),
)
@login_required
def my_attempts(test_id: int) -> Response:
    return _forward("GET", f"/tests/{test_id}/attempts/mine")


@blueprint.get("/attempts/<int:attempt_id>")
@documented(
    "Get one of your attempts (with its review once submitted, as the test allows)",
    tag=TAG,
    auth="user",
    responses={200: AttemptOut},
    errors=(403, 404),
)
@login_required
def get_attempt(attempt_id: int) -> Response:
    return _forward("GET", f"/attempts/{attempt_id}")


@blueprint.put("/attempts/<int:attempt_id>/answers")
@documented(
    "Save answers of an open attempt",
    tag=TAG,
    auth="user",
    body=AnswersIn,
    responses={200: AttemptOut},
    errors=(403, 404, 409),
    example={"answers": [{"question_id": 1, "option_ids": [2]}]},
)
@login_required
def save_answers(attempt_id: int) -> Response:
    parse_body(AnswersIn)
    return _forward_body("PUT", f"/attempts/{attempt_id}/answers")


@blueprint.post("/attempts/<int:attempt_id>/submit")
@documented(
    "Submit an attempt for grading",
    tag=TAG,
    auth="user",
    responses={200: AttemptOut},
    errors=(403, 404, 409),
)
@login_required
def submit_attempt(attempt_id: int) -> Response:
    return _forward_without_body("POST", f"/attempts/{attempt_id}/submit")


# ----------------------------------------------------------------------------- progress


@blueprint.put("/lessons/<int:lesson_id>/completion")
@documented(
    "Mark a lesson completed",
    tag=TAG,
    auth="user",
    responses={200: CourseProgress},
    errors=(403, 404, 409),
)
@login_required
def complete_lesson(lesson_id: int) -> Response:
    return _forward("PUT", f"/lessons/{lesson_id}/completion")


@blueprint.delete("/lessons/<int:lesson_id>/completion")
@documented(
    "Mark a lesson not completed",
    tag=TAG,
    auth="user",
    responses={200: CourseProgress},
    errors=(403, 404, 409),
)
@login_required
def uncomplete_lesson(lesson_id: int) -> Response:
    return _forward("DELETE", f"/lessons/{lesson_id}/completion")


@blueprint.get("/course/<int:course_id>/progress")
@documented(
    "Your progress in a course",
    tag=TAG,
    auth="user",
    responses={200: CourseProgress},
    errors=(403, 404),
)
@login_required
def course_progress(course_id: int) -> Response:
    return _forward("GET", f"/courses/{course_id}/progress")


@blueprint.get("/progress")
@documented(
    "Your progress in every course you are enrolled in",
    tag=TAG,
    auth="user",
    query=PageQuery,
    responses={200: ProgressList},
)
@login_required
def my_progress() -> Response:
    parse_query(PageQuery)
    return _forward_query("GET", "/progress")


@blueprint.get("/course/<int:course_id>/progress/learners")
@documented(
    "Every learner's progress in a course (admin or the course's author)",
    tag=TAG,
    auth="user",
    query=PageQuery,
    responses={200: LearnerProgressList},
    errors=(403, 404),
)
@login_required
def learners_progress(course_id: int) -> Response:
    parse_query(PageQuery)
    return _forward_query("GET", f"/courses/{course_id}/progress/learners")
