"""HTTP layer of the enrolments service: parse, call the service, serialise."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from common.identity import require_admin, require_caller
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
from enrolments.domain import Page
from enrolments.service import EnrolmentService

blueprint = Blueprint("enrolments", __name__)


def _service() -> EnrolmentService:
    return current_app.extensions["container"].service()


def _json(record: Any, status: int = 200) -> tuple[Response, int]:
    return jsonify(EnrolmentOut.model_validate(record).model_dump()), status


def _listing(records: list[Any], total: int, page: Page) -> tuple[Response, int]:
    listing = EnrolmentList(
        enrolments=[EnrolmentOut.model_validate(r) for r in records],
        page=page.page,
        per_page=page.per_page,
        total=total,
    )
    return jsonify(listing.model_dump()), 200


@blueprint.post("/enrolment")
def enrol() -> tuple[Response, int]:
    caller = require_caller()
    body = parse_body(EnrolmentCreate)
    return _json(_service().enrol(caller, body.course_id, body.user_id), 201)


@blueprint.patch("/enrolment/paid")
def mark_paid() -> tuple[Response, int]:
    caller = require_caller()
    body = parse_body(MarkPaid)
    return _json(_service().mark_paid(caller, body.enrolment_id))


@blueprint.patch("/enrolment/expired")
def expire() -> tuple[Response, int]:
    require_admin()
    report = _service().expire()
    out = ExpiryOut(
        expired=report.expired, enrolment_ids=report.enrolment_ids, truncated=report.truncated
    )
    return jsonify(out.model_dump()), 200


@blueprint.get("/enrolment/active")
def active() -> tuple[Response, int]:
    require_admin()
    query = parse_query(ActiveQuery)
    page = Page(query.page, query.per_page)
    records, total = _service().active(page, query.course_id)
    return _listing(records, total, page)


@blueprint.get("/enrolment/mine")
def mine() -> tuple[Response, int]:
    caller = require_caller()
    query = parse_query(MineQuery)
    page = Page(query.page, query.per_page)
    records, total = _service().mine(caller, page, query.status)
    return _listing(records, total, page)


@blueprint.get("/enrolment/<int:enrolment_id>")
def get_enrolment(enrolment_id: int) -> tuple[Response, int]:
    require_admin()
    return _json(_service().get(enrolment_id))


@blueprint.get("/enrolment/<int:enrolment_id>/details")
def details(enrolment_id: int) -> tuple[Response, int]:
    caller = require_caller()
    return _json(_service().details(caller, enrolment_id))


@blueprint.post("/enrolment/<int:enrolment_id>/cancel")
def cancel(enrolment_id: int) -> tuple[Response, int]:
    caller = require_caller()
    return _json(_service().cancel(caller, enrolment_id))


@blueprint.delete("/enrolment/<int:enrolment_id>")
def delete(enrolment_id: int) -> tuple[str, int]:
    require_admin()
    _service().delete(enrolment_id)
    return "", 204


@blueprint.post("/enrolment/<int:enrolment_id>/invoice/retry")
def retry_invoice(enrolment_id: int) -> tuple[Response, int]:
    require_admin()
    return _json(_service().retry_invoice(enrolment_id))
