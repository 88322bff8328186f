"""Routes for the learning service. The internal key (checked for every route) is all
they need: no caller identity, the learning service vouches for its own users."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from common.validation import parse_body, parse_query
from contracts.enrolments import (
    AccessQuery,
    CompletionOut,
    CompletionRequest,
    Learner,
    LearnerAccess,
    LearnerList,
    LearnersQuery,
    UserEnrolment,
    UserEnrolmentList,
    UserEnrolmentsQuery,
)
from enrolments.adapters.tables import EnrolmentRecord
from enrolments.domain import Page
from enrolments.learners import LearnerService

blueprint = Blueprint("enrolments_internal", __name__, url_prefix="/internal/enrolments")


def _service() -> LearnerService:
    return current_app.extensions["container"].learner_service()


def _live(record: EnrolmentRecord) -> dict[str, object]:
    return {
        "enrolment_id": record.id,
        "status": record.status,
        "payment_status": record.payment_status,
    }


@blueprint.get("/access")
def access() -> tuple[Response, int]:
    query = parse_query(AccessQuery)
    found = _service().access(query.user_id, query.course_id)
    out = LearnerAccess.model_validate(found, from_attributes=True)
    return jsonify(out.model_dump()), 200


@blueprint.get("/learners")
def learners() -> tuple[Response, int]:
    query = parse_query(LearnersQuery)
    page = Page(query.page, query.per_page)
    records, total = _service().learners(query.course_id, page)
    listing = LearnerList(
        learners=[Learner.model_validate({"user_id": r.user_id, **_live(r)}) for r in records],
        page=page.page,
        per_page=page.per_page,
        total=total,
    )
    return jsonify(listing.model_dump()), 200


@blueprint.get("/by-user")
def by_user() -> tuple[Response, int]:
    query = parse_query(UserEnrolmentsQuery)
    page = Page(query.page, query.per_page)
    records, total = _service().by_user(query.user_id, page)
    listing = UserEnrolmentList(
        enrolments=[
            UserEnrolment.model_validate({"course_id": r.course_id, **_live(r)}) for r in records
        ],
        page=page.page,
        per_page=page.per_page,
        total=total,
    )
    return jsonify(listing.model_dump()), 200


@blueprint.post("/complete")
def complete() -> tuple[Response, int]:
    body = parse_body(CompletionRequest)
    record = _service().complete(body.user_id, body.course_id)
    out = CompletionOut.model_validate({"enrolment_id": record.id, "status": record.status})
    return jsonify(out.model_dump()), 200
