"""HTTP layer of tests, questions and attempts: parse, call the service, serialise."""

from __future__ import annotations

from flask import Blueprint, Response, request

from common.errors import ApiError
from common.identity import require_caller
from common.validation import parse_body
from contracts.learning import (
    AnswersIn,
    Ordering,
    QuestionFields,
    QuestionList,
    QuestionUpdate,
    TestSettings,
)
from learning.http.common import answer, service

blueprint = Blueprint("learning_quizzes", __name__)


def _no_body() -> None:
    # Starting or submitting takes nothing from the client: no scores, no answers.
    if request.get_data(cache=True).strip() not in (b"", b"{}"):
        raise ApiError("This request takes no body.", code="validation_error")


@blueprint.put("/lessons/<int:lesson_id>/test")
def put_test(lesson_id: int) -> tuple[Response, int]:
    caller = require_caller()
    test, created = service().put_test(caller, lesson_id, parse_body(TestSettings))
    return answer(test, 201 if created else 200)


@blueprint.get("/tests/<int:test_id>")
def get_test(test_id: int) -> tuple[Response, int]:
    return answer(service().get_test(require_caller(), test_id))


@blueprint.post("/tests/<int:test_id>/questions")
def add_question(test_id: int) -> tuple[Response, int]:
    caller = require_caller()
    return answer(service().add_question(caller, test_id, parse_body(QuestionFields)), 201)


@blueprint.put("/tests/<int:test_id>/questions/order")
def order_questions(test_id: int) -> tuple[Response, int]:
    caller = require_caller()
    questions = service().order_questions(caller, test_id, parse_body(Ordering).ids)
    return answer(QuestionList(questions=questions))


@blueprint.patch("/questions/<int:question_id>")
def update_question(question_id: int) -> tuple[Response, int]:
    caller = require_caller()
    changes = parse_body(QuestionUpdate).changes()
    return answer(service().update_question(caller, question_id, changes))


@blueprint.delete("/questions/<int:question_id>")
def delete_question(question_id: int) -> tuple[str, int]:
    service().delete_question(require_caller(), question_id)
    return "", 204


@blueprint.post("/tests/<int:test_id>/attempts")
def start_attempt(test_id: int) -> tuple[Response, int]:
    caller = require_caller()
    _no_body()
    attempt, started = service().start_attempt(caller, test_id)
    return answer(attempt, 201 if started else 200)


@blueprint.get("/tests/<int:test_id>/attempts/mine")
def my_attempts(test_id: int) -> tuple[Response, int]:
    return answer(service().my_attempts(require_caller(), test_id))


@blueprint.get("/attempts/<int:attempt_id>")
def get_attempt(attempt_id: int) -> tuple[Response, int]:
    return answer(service().get_attempt(require_caller(), attempt_id))


@blueprint.put("/attempts/<int:attempt_id>/answers")
def save_answers(attempt_id: int) -> tuple[Response, int]:
    caller = require_caller()
    body = parse_body(AnswersIn)
    return answer(service().save_answers(caller, attempt_id, body.answers))


@blueprint.post("/attempts/<int:attempt_id>/submit")
def submit(attempt_id: int) -> tuple[Response, int]:
    caller = require_caller()
    _no_body()
    return answer(service().submit(caller, attempt_id))
