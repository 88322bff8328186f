"""HTTP layer of the courses service: parse, call the service, serialise."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from common.identity import require_admin
from common.validation import parse_body, parse_query
from contracts.courses import CourseCreate, CourseList, CourseListQuery, CourseOut, CourseUpdate
from courses.domain import CourseQuery
from courses.service import CourseService

blueprint = Blueprint("courses", __name__)


def _service() -> CourseService:
    return current_app.extensions["container"].course_service()


def _course_json(record: Any, status: int = 200) -> tuple[Response, int]:
    return jsonify(CourseOut.model_validate(record, from_attributes=True).model_dump()), status


@blueprint.post("/courses")
def create_course() -> tuple[Response, int]:
    require_admin()
    fields = parse_body(CourseCreate)
    return _course_json(_service().create(fields), 201)


@blueprint.get("/courses")
def list_courses() -> tuple[Response, int]:
    query = parse_query(CourseListQuery)
    if query.name is not None:
        return _course_json(_service().get_by_name(query.name))
    records, total = _service().search(
        CourseQuery.model_validate(query.model_dump(exclude={"name"}))
    )
    listing = CourseList(
        courses=[CourseOut.model_validate(r, from_attributes=True) for r in records],
        page=query.page,
        per_page=query.per_page,
        total=total,
    )
    return jsonify(listing.model_dump()), 200


@blueprint.get("/courses/<int:course_id>")
def get_course(course_id: int) -> tuple[Response, int]:
    return _course_json(_service().get(course_id))


@blueprint.patch("/courses/<int:course_id>")
def update_course(course_id: int) -> tuple[Response, int]:
    require_admin()
    changes = parse_body(CourseUpdate).changes()
    return _course_json(_service().update(course_id, changes))


@blueprint.delete("/courses/<int:course_id>")
def delete_course(course_id: int) -> tuple[str, int]:
    require_admin()
    _service().delete(course_id)
    return "", 204
