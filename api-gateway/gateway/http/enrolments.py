"""Public enrolment routes, forwarded to the enrolments service."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from common.validation import parse_body, parse_query
from contracts.enrolments import (
    ActiveQuery,
    EnrolmentCreate,
    EnrolmentList,
    EnrolmentOut,
    ExpiryOut,
    MarkPaid,
    MineQuery,
)
from gateway.adapters.upstream import Upstream
from gateway.http.guards import current_caller, login_required, roles_required
from gateway.openapi import Link, documented

blueprint = Blueprint("gateway_enrolments", __name__, url_prefix="/api/enrolment")

ENROLMENT_ID = {"enrolment_id": "$response.body#/id"}
ENROLMENT_LINKS = {
    "GetEnrolment": Link("GET /api/enrolment/{enrolment_id}", ENROLMENT_ID),
    "Details": Link("GET /api/enrolment/{enrolment_id}/details", ENROLMENT_ID),
    "MarkPaid": Link("PATCH /api/enrolment/paid", body={"enrolment_id": "$response.body#/id"}),
    "Cancel": Link("POST /api/enrolment/{enrolment_id}/cancel", ENROLMENT_ID),
    "RetryInvoice": Link("POST /api/enrolment/{enrolment_id}/invoice/retry", ENROLMENT_ID),
    "DeleteEnrolment": Link("DELETE /api/enrolment/{enrolment_id}", ENROLMENT_ID),
}


def _enrolments() -> Upstream:
    return current_app.extensions["container"].enrolments()


@blueprint.post("/")
@documented(
    "Enrol in a course (admins may pass user_id)",
    tag="enrolments",
    auth="user",
    body=EnrolmentCreate,
    responses={201: EnrolmentOut},
    errors=(403, 404, 409),
    links=ENROLMENT_LINKS,
    example={"course_id": 1},
)
@login_required
def enrol() -> Response:
    parse_body(EnrolmentCreate)
    return _enrolments().forward(
        "POST", "/enrolment", caller=current_caller(), content=request.get_data()
    )


@blueprint.patch("/paid")
@documented(
    "Mark an enrolment paid; the invoice follows in the background",
    tag="enrolments",
    auth="user",
    body=MarkPaid,
    responses={200: EnrolmentOut},
    errors=(404, 409),
    example={"enrolment_id": 1},
)
@login_required
def mark_paid() -> Response:
    parse_body(MarkPaid)
    return _enrolments().forward(
        "PATCH", "/enrolment/paid", caller=current_caller(), content=request.get_data()
    )


@blueprint.patch("/expired")
@documented(
    "Expire active enrolments of ended courses",
    tag="enrolments",
    auth="admin",
    responses={200: ExpiryOut},
)
@roles_required("admin")
def expire() -> Response:
    return _enrolments().forward("PATCH", "/enrolment/expired", caller=current_caller())


@blueprint.get("/active")
@documented(
    "List active enrolments",
    tag="enrolments",
    auth="admin",
    query=ActiveQuery,
    responses={200: EnrolmentList},
)
@roles_required("admin")
def active() -> Response:
    parse_query(ActiveQuery)
    return _enrolments().forward(
        "GET", "/enrolment/active", caller=current_caller(), params=request.query_string.decode()
    )


@blueprint.get("/mine")
@documented(
    "List the caller's enrolments",
    tag="enrolments",
    auth="user",
    query=MineQuery,
    responses={200: EnrolmentList},
)
@login_required
def mine() -> Response:
    parse_query(MineQuery)
    return _enrolments().forward(
        "GET", "/enrolment/mine", caller=current_caller(), params=request.query_string.decode()
    )


@blueprint.get("/<int:enrolment_id>")
@documented(
    "Get an enrolment", tag="enrolments", auth="admin", responses={200: EnrolmentOut}, errors=(404,)
)
@roles_required("admin")
def get_enrolment(enrolment_id: int) -> Response:
    return _enrolments().forward("GET", f"/enrolment/{enrolment_id}", caller=current_caller())


@blueprint.get("/<int:enrolment_id>/details")
@documented(
    "Get one of the caller's enrolments",
    tag="enrolments",
    auth="user",
    responses={200: EnrolmentOut},
    errors=(404,),
)
@login_required
def details(enrolment_id: int) -> Response:
    return _enrolments().forward(
        "GET", f"/enrolment/{enrolment_id}/details", caller=current_caller()
    )


@blueprint.post("/<int:enrolment_id>/cancel")
@documented(
    "Cancel an unpaid enrolment",
    tag="enrolments",
    auth="user",
    responses={200: EnrolmentOut},
    errors=(404, 409),
)
@login_required
def cancel(enrolment_id: int) -> Response:
    return _enrolments().forward(
        "POST", f"/enrolment/{enrolment_id}/cancel", caller=current_caller()
    )


@blueprint.delete("/<int:enrolment_id>")
@documented(
    "Delete an enrolment", tag="enrolments", auth="admin", responses={204: None}, errors=(404, 409)
)
@roles_required("admin")
def delete(enrolment_id: int) -> Response:
    return _enrolments().forward("DELETE", f"/enrolment/{enrolment_id}", caller=current_caller())


@blueprint.post("/<int:enrolment_id>/invoice/retry")
@documented(
    "Retry a failed invoice",
    tag="enrolments",
    auth="admin",
    responses={200: EnrolmentOut},
    errors=(404, 409),
)
@roles_required("admin")
def retry_invoice(enrolment_id: int) -> Response:
    return _enrolments().forward(
        "POST", f"/enrolment/{enrolment_id}/invoice/retry", caller=current_caller()
    )
