"""HTTP layer of the courses service: parse, call the service, serialise."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from common.identity import Caller, current_caller, require_caller
from common.validation import parse_body, parse_query
from contracts.courses import (
    AuthorCoursesQuery,
    CourseCreate,
    CourseList,
    CourseListQuery,
    CourseOut,
    CourseUpdate,
)
from courses.domain import CourseQuery, check_may_author
from courses.service import CourseService

blueprint = Blueprint("courses", __name__)


def _service() -> CourseService:
    return current_app.extensions["container"].course_service()


def course_out(record: Any) -> CourseOut:
    return CourseOut.model_validate(record, from_attributes=True)


def _course_json(record: Any, status: int = 200) -> tuple[Response, int]:
    return jsonify(course_out(record).model_dump()), status


def _author() -> Caller:
    """Refuse a caller who may author no course before reading the body."""
    caller = require_caller()
    check_may_author(caller)
    return caller


def _listing(records: list[Any], total: int, page: int, per_page: int) -> tuple[Response, int]:
    listing = CourseList(
        courses=[course_out(r) for r in records], page=page, per_page=per_page, total=total
    )
    return jsonify(listing.model_dump()), 200


@blueprint.post("/courses")
def create_course() -> tuple[Response, int]:
    caller = _author()
    body = parse_body(CourseCreate)
    return _course_json(_service().create(caller, body, body.status), 201)


@blueprint.get("/courses")
def list_courses() -> tuple[Response, int]:
    query = parse_query(CourseListQuery)
    if query.exact_name is not None:
        return _course_json(_service().get_by_name(query.exact_name))
    records, total = _service().search(
        CourseQuery.model_validate(query.model_dump(exclude={"exact_name"}))
    )
    return _listing(records, total, query.page, query.per_page)


@blueprint.get("/courses/author/<author_id>")
def list_author_courses(author_id: str) -> tuple[Response, int]:
    query = parse_query(AuthorCoursesQuery)
    records, total = _service().by_author(current_caller(), author_id, query.page, query.per_page)
    return _listing(records, total, query.page, query.per_page)


@blueprint.get("/courses/<int:course_id>")
def get_course(course_id: int) -> tuple[Response, int]:
    return _course_json(_service().get(current_caller(), course_id))


@blueprint.patch("/courses/<int:course_id>")
def update_course(course_id: int) -> tuple[Response, int]:
    caller = _author()
    changes = parse_body(CourseUpdate).changes()
    return _course_json(_service().update(caller, course_id, changes))


@blueprint.delete("/courses/<int:course_id>")
def delete_course(course_id: int) -> tuple[str, int]:
    caller = _author()
    _service().delete(caller, course_id)
    return "", 204
