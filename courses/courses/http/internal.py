"""Routes for the other services (the internal key, checked for every route, is all they
need): any course whatever its status, no caller, no visibility rule."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from common.validation import parse_query
from contracts.courses import CourseBatch, CourseIdsQuery
from courses.http.routes import course_out
from courses.service import CourseService

blueprint = Blueprint("courses_internal", __name__, url_prefix="/internal")


def _service() -> CourseService:
    return current_app.extensions["container"].course_service()


@blueprint.get("/courses/<int:course_id>")
def get_course(course_id: int) -> tuple[Response, int]:
    return jsonify(course_out(_service().get_internal(course_id)).model_dump()), 200


@blueprint.get("/courses")
def get_courses() -> tuple[Response, int]:
    query = parse_query(CourseIdsQuery)
    records = _service().get_many_internal(query.ids)
    return jsonify(CourseBatch(courses=[course_out(r) for r in records]).model_dump()), 200
