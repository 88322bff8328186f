"""Public course routes, forwarded to the courses service."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from common.validation import parse_body, parse_query
from courses.http.schemas import CourseCreate, CourseListQuery, CourseUpdate
from gateway.adapters.upstream import Upstream
from gateway.http.guards import current_caller, login_optional, roles_required

blueprint = Blueprint("gateway_courses", __name__, url_prefix="/api/course")


def _courses() -> Upstream:
    return current_app.extensions["container"].courses()


@blueprint.post("/")
@roles_required("admin")
def create_course() -> Response:
    parse_body(CourseCreate)
    return _courses().forward(
        "POST", "/courses", caller=current_caller(), content=request.get_data()
    )


@blueprint.get("/")
@login_optional
def list_or_find_courses() -> Response:
    parse_query(CourseListQuery)
    return _courses().forward(
        "GET", "/courses", caller=current_caller(), params=request.query_string.decode()
    )


@blueprint.get("/<int:course_id>")
@login_optional
def get_course(course_id: int) -> Response:
    return _courses().forward("GET", f"/courses/{course_id}", caller=current_caller())


@blueprint.patch("/<int:course_id>")
@roles_required("admin")
def update_course(course_id: int) -> Response:
    parse_body(CourseUpdate)
    return _courses().forward(
        "PATCH", f"/courses/{course_id}", caller=current_caller(), content=request.get_data()
    )


@blueprint.delete("/<int:course_id>")
@roles_required("admin")
def delete_course(course_id: int) -> Response:
    return _courses().forward("DELETE", f"/courses/{course_id}", caller=current_caller())
