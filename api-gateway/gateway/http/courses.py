"""Public course routes, forwarded to the courses service.

Writes need the admin or instructor role here; which course an instructor may change
(the ones they authored) and who sees a draft is the courses service's decision.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, current_app, request
from pydantic import RootModel

from common.validation import parse_body, parse_query
from contracts.courses import (
    AuthorCoursesQuery,
    CourseCreate,
    CourseList,
    CourseListQuery,
    CourseOut,
    CourseUpdate,
)
from contracts.users import AUTHOR_ROLES
from gateway.adapters.upstream import Upstream
from gateway.http.guards import current_caller, login_optional, roles_required
from gateway.openapi import Link, documented

EXAMPLE = {
    "name": "Python for Data",
    "description": "Pandas, plots and a little statistics.",
    "price": "199.99",
    "currency": "PLN",
    "max_participants": 20,
    "start_date": "2031-03-01T09:00:00+01:00",
    "end_date": "2031-04-01T17:00:00+02:00",
}


COURSE_ID = {"course_id": "$response.body#/id"}
# Where a new course leads: its own routes, its content, enrolling in it.
COURSE_LINKS = {
    "GetCourse": Link("GET /api/course/{course_id}", COURSE_ID),
    "UpdateCourse": Link("PATCH /api/course/{course_id}", COURSE_ID),
    "DeleteCourse": Link("DELETE /api/course/{course_id}", COURSE_ID),
    "AuthorCourses": Link(
        "GET /api/course/author/{author_id}", {"author_id": "$response.body#/author_id"}
    ),
    "Outline": Link("GET /api/course/{course_id}/outline", COURSE_ID),
    "ListModules": Link("GET /api/course/{course_id}/modules", COURSE_ID),
    "AddModule": Link("POST /api/course/{course_id}/modules", COURSE_ID),
    "OrderModules": Link("PUT /api/course/{course_id}/modules/order", COURSE_ID),
    "Enrol": Link("POST /api/enrolment", body={"course_id": "$response.body#/id"}),
}
DATES_IN_ORDER = "start_date is not before end_date"


class CourseLookup(RootModel[CourseOut | CourseList]):
    """One course when ``exact_name`` is given, else a page of the catalogue (``name`` and
    ``search`` are contains matches)."""


blueprint = Blueprint("gateway_courses", __name__, url_prefix="/api/course")


def _courses() -> Upstream:
    return current_app.extensions["container"].courses()


@blueprint.post("/")
@documented(
    "Create a course (admin or instructor; the caller becomes its author; an instructor's "
    "course is a draft unless status is sent)",
    tag="courses",
    auth="instructor",
    body=CourseCreate,
    responses={201: CourseOut},
    errors=(403, 409),
    valid_request_errors={400: DATES_IN_ORDER},
    links=COURSE_LINKS,
    example=EXAMPLE,
)
@roles_required(*AUTHOR_ROLES)
def create_course() -> Response:
    parse_body(CourseCreate)
    return _courses().forward(
        "POST", "/courses", caller=current_caller(), content=request.get_data()
    )


@blueprint.get("/")
@documented(
    "Browse the catalogue of published courses (name/search: contains), or find one by exact_name",
    tag="courses",
    auth="optional",
    query=CourseListQuery,
    responses={200: CourseLookup},
    errors=(404,),
)
@login_optional
def list_or_find_courses() -> Response:
    parse_query(CourseListQuery)
    return _courses().forward(
        "GET", "/courses", caller=current_caller(), params=request.query_string.decode()
    )


@blueprint.get("/author/<author_id>")
@documented(
    "List an author's courses (their drafts and archived ones too for the author and admins)",
    tag="courses",
    auth="optional",
    query=AuthorCoursesQuery,
    responses={200: CourseList},
    errors=(404,),
)
@login_optional
def list_author_courses(author_id: str) -> Response:
    parse_query(AuthorCoursesQuery)
    return _courses().forward(
        "GET",
        f"/courses/author/{quote(author_id, safe='')}",
        caller=current_caller(),
        params=request.query_string.decode(),
    )


@blueprint.get("/<int:course_id>")
@documented(
    "Get a course (a draft only for its author and admins)",
    tag="courses",
    auth="optional",
    responses={200: CourseOut},
    errors=(404,),
)
@login_optional
def get_course(course_id: int) -> Response:
    return _courses().forward("GET", f"/courses/{course_id}", caller=current_caller())


@blueprint.patch("/<int:course_id>")
@documented(
    "Update a course, only the fields sent (an admin, or the instructor who authored it)",
    tag="courses",
    auth="instructor",
    body=CourseUpdate,
    responses={200: CourseOut},
    errors=(403, 404, 409),
    valid_request_errors={400: DATES_IN_ORDER + " (once merged into the stored course)"},
    example={"price": "149.00"},
)
@roles_required(*AUTHOR_ROLES)
def update_course(course_id: int) -> Response:
    parse_body(CourseUpdate)
    return _courses().forward(
        "PATCH", f"/courses/{course_id}", caller=current_caller(), content=request.get_data()
    )


@blueprint.delete("/<int:course_id>")
@documented(
    "Delete a course (an admin, or the instructor who authored it)",
    tag="courses",
    auth="instructor",
    responses={204: None},
    errors=(403, 404),
)
@roles_required(*AUTHOR_ROLES)
def delete_course(course_id: int) -> Response:
    return _courses().forward("DELETE", f"/courses/{course_id}", caller=current_caller())
