"""Public enrolment routes, forwarded to the enrolments service."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from common.validation import parse_body, parse_query
from enrolments.http.schemas import ActiveQuery, EnrolmentCreate, MarkPaid, MineQuery
from gateway.adapters.upstream import Upstream
from gateway.http.guards import current_caller, login_required, roles_required

blueprint = Blueprint("gateway_enrolments", __name__, url_prefix="/api/enrolment")


def _enrolments() -> Upstream:
    return current_app.extensions["container"].enrolments()


@blueprint.post("/")
@login_required
def enrol() -> Response:
    parse_body(EnrolmentCreate)
    return _enrolments().forward(
        "POST", "/enrolment", caller=current_caller(), content=request.get_data()
    )


@blueprint.patch("/paid")
@login_required
def mark_paid() -> Response:
    parse_body(MarkPaid)
    return _enrolments().forward(
        "PATCH", "/enrolment/paid", caller=current_caller(), content=request.get_data()
    )


@blueprint.patch("/expired")
@roles_required("admin")
def expire() -> Response:
    return _enrolments().forward("PATCH", "/enrolment/expired", caller=current_caller())


@blueprint.get("/active")
@roles_required("admin")
def active() -> Response:
    parse_query(ActiveQuery)
    return _enrolments().forward(
        "GET", "/enrolment/active", caller=current_caller(), params=request.query_string.decode()
    )


@blueprint.get("/mine")
@login_required
def mine() -> Response:
    parse_query(MineQuery)
    return _enrolments().forward(
        "GET", "/enrolment/mine", caller=current_caller(), params=request.query_string.decode()
    )


@blueprint.get("/<int:enrolment_id>")
@roles_required("admin")
def get_enrolment(enrolment_id: int) -> Response:
    return _enrolments().forward("GET", f"/enrolment/{enrolment_id}", caller=current_caller())


@blueprint.get("/<int:enrolment_id>/details")
@login_required
def details(enrolment_id: int) -> Response:
    return _enrolments().forward(
        "GET", f"/enrolment/{enrolment_id}/details", caller=current_caller()
    )


@blueprint.post("/<int:enrolment_id>/cancel")
@login_required
def cancel(enrolment_id: int) -> Response:
    return _enrolments().forward(
        "POST", f"/enrolment/{enrolment_id}/cancel", caller=current_caller()
    )


@blueprint.delete("/<int:enrolment_id>")
@roles_required("admin")
def delete(enrolment_id: int) -> Response:
    return _enrolments().forward("DELETE", f"/enrolment/{enrolment_id}", caller=current_caller())


@blueprint.post("/<int:enrolment_id>/invoice/retry")
@roles_required("admin")
def retry_invoice(enrolment_id: int) -> Response:
    return _enrolments().forward(
        "POST", f"/enrolment/{enrolment_id}/invoice/retry", caller=current_caller()
    )
