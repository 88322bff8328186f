"""HTTP layer of the users service: parse, call the service, serialise.

Paths mirror the public gateway paths without ``/api``; ``/internal/...`` is for
the gateway and the other services only and is never routed to the public.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from common.errors import Forbidden
from common.identity import (
    SESSIONS_INVALIDATED_HEADER,
    current_caller,
    require_admin,
    require_caller,
)
from common.validation import parse_body, parse_query
from contracts.users import (
    ActivationRequest,
    CredentialsCheck,
    IdentifierBody,
    IdentifierQuery,
    LoginAccount,
    MfaCheck,
    MfaConfirm,
    MfaDisable,
    PasswordChange,
    PasswordOnly,
    ProfileUpdate,
    ResetRequest,
    RoleChange,
    UserCreate,
    UserIdQuery,
    UserList,
    UserListQuery,
    UserOut,
)
from users.domain import internal_user, public_user, user_summary
from users.service import Enrolment, UserService

# One body for every outcome, so the answer never tells whether an account exists.
RESEND_ACCEPTED = {
    "message": "If the account exists and is not active yet, a new activation code is on its way."
}
FORGOT_ACCEPTED = {
    "message": "If an active account matches, a password reset link is on its way by mail."
}

blueprint = Blueprint("users", __name__)
internal = Blueprint("users_internal", __name__, url_prefix="/internal")


def _service() -> UserService:
    return current_app.extensions["container"].user_service()


def _user_json(doc: dict[str, Any], status: int = 200) -> tuple[Response, int]:
    return jsonify(UserOut.model_validate(public_user(doc)).model_dump()), status


def _invalidated(response: Response, user_id: str) -> Response:
    """Tell the gateway to drop what it cached about this user's sessions."""
    response.headers[SESSIONS_INVALIDATED_HEADER] = user_id
    return response


def _enrolment_json(enrolment: Enrolment) -> Response:
    return jsonify(
        provisioning_uri=enrolment.provisioning_uri, qr_code_base64=enrolment.qr_code_base64
    )


# -- accounts ----------------------------------------------------------------------------------


@blueprint.post("/users")
def register() -> tuple[Response, int]:
    body = parse_body(UserCreate)
    caller = current_caller()
    if body.role is not None and not (caller is not None and caller.is_admin):
        raise Forbidden("Only an admin can choose the role of a new account.")
    doc = _service().register(
        username=body.username,
        email=body.email,
        first_name=body.first_name,
        last_name=body.last_name,
        gender=body.gender,
        password=body.password,
        role=body.role or "user",
    )
    return _user_json(doc, 201)


@blueprint.get("/users")
def list_users() -> tuple[Response, int]:
    require_admin()
    query = parse_query(UserListQuery)
    docs, total = _service().search(page=query.page, per_page=query.per_page, search=query.search)
    listing = UserList(
        users=[UserOut.model_validate(public_user(doc)) for doc in docs],
        page=query.page,
        per_page=query.per_page,
        total=total,
    )
    return jsonify(listing.model_dump()), 200


@blueprint.get("/users/id")
def get_by_id() -> tuple[Response, int]:
    require_admin()
    return _user_json(_service().get(parse_query(UserIdQuery).user_id))


@blueprint.delete("/users/id")
def delete_by_id() -> Response:
    require_admin()
    user_id = _service().delete(parse_query(UserIdQuery).user_id)
    return _invalidated(Response(status=204), user_id)


@blueprint.get("/users/identifier")
def get_by_identifier() -> tuple[Response, int]:
    require_admin()
    return _user_json(_service().get_by_identifier(parse_query(IdentifierQuery).identifier))


@blueprint.delete("/users/identifier")
def delete_by_identifier() -> Response:
    require_admin()
    user_id = _service().delete_by_identifier(parse_query(IdentifierQuery).identifier)
    return _invalidated(Response(status=204), user_id)


@blueprint.patch("/users/<user_id>/role")
def change_role(user_id: str) -> Response:
    require_admin()
    doc = _service().set_role(user_id, parse_body(RoleChange).role)
    response, _ = _user_json(doc)
    return _invalidated(response, str(doc["_id"]))


# -- activation --------------------------------------------------------------------------------


@blueprint.patch("/users/activation")
def activate() -> tuple[Response, int]:
    body = parse_body(ActivationRequest)
    return _user_json(_service().activate(body.code, body.identifier))


@blueprint.route("/users/activation/resend", methods=["GET", "POST"])
def resend_activation() -> tuple[Response, int]:
    if request.method == "POST" and request.is_json and not request.args:
        identifier = parse_body(IdentifierBody).identifier
    else:
        identifier = parse_query(IdentifierQuery).identifier
    _service().resend_activation(identifier)
    return jsonify(RESEND_ACCEPTED), 202


# -- passwords ---------------------------------------------------------------------------------


@blueprint.post("/users/password/forgot")
def forgot_password() -> tuple[Response, int]:
    _service().forgot_password(parse_body(IdentifierBody).identifier)
    return jsonify(FORGOT_ACCEPTED), 202


@blueprint.post("/users/password/reset")
def reset_password() -> Response:
    body = parse_body(ResetRequest)
    user_id = _service().reset_password(body.token, body.new_password)
    return _invalidated(jsonify(message="Your password has been changed."), user_id)


# -- the caller's own account ------------------------------------------------------------------


@blueprint.get("/users/me")
def me() -> tuple[Response, int]:
    return _user_json(_service().get(require_caller().user_id))


@blueprint.patch("/users/me")
def update_me() -> tuple[Response, int]:
    caller = require_caller()
    changes = parse_body(ProfileUpdate).changes()
    return _user_json(_service().update_profile(caller.user_id, changes))


@blueprint.post("/users/me/password")
def change_password() -> Response:
    caller = require_caller()
    body = parse_body(PasswordChange)
    doc = _service().change_password(caller.user_id, body.current_password, body.new_password)
    response, _ = _user_json(doc)
    return _invalidated(response, str(doc["_id"]))


# -- MFA enrolment (always the caller's own account) -------------------------------------------


@blueprint.patch("/users/mfa/enable")
def mfa_enable() -> Response:
    caller = require_caller()
    password = parse_body(PasswordOnly).password
    return _enrolment_json(_service().mfa_enable(caller.user_id, password))


@blueprint.get("/users/mfa/qr")
def mfa_qr() -> Response:
    return _enrolment_json(_service().mfa_qr(require_caller().user_id))


@blueprint.post("/users/mfa/confirm")
def mfa_confirm() -> Response:
    caller = require_caller()
    codes = _service().mfa_confirm(caller.user_id, parse_body(MfaConfirm).code)
    response = jsonify(mfa_enabled=True, recovery_codes=codes)
    return _invalidated(response, caller.user_id)


@blueprint.patch("/users/mfa/disable")
def mfa_disable() -> Response:
    caller = require_caller()
    body = parse_body(MfaDisable)
    doc = _service().mfa_disable(caller.user_id, body.password, body.code)
    response, _ = _user_json(doc)
    return _invalidated(response, caller.user_id)


# -- internal: the gateway's credential and MFA checks ----------------------------------------


@internal.post("/credentials/verify")
def verify_credentials() -> Response:
    body = parse_body(CredentialsCheck)
    return jsonify(user_summary(_service().verify_credentials(body.identifier, body.password)))


@internal.post("/credentials/account")
def login_account() -> Response:
    """The gateway's back-off key for an identifier (see UserService.login_account)."""
    identifier = parse_body(IdentifierBody).identifier
    return jsonify(LoginAccount(account=_service().login_account(identifier)).model_dump())


@internal.post("/mfa/verify")
def verify_mfa() -> Response:
    body = parse_body(MfaCheck)
    return jsonify(user_summary(_service().verify_mfa(body.user_id, body.code)))


@internal.get("/users/<user_id>")
def internal_get_user(user_id: str) -> Response:
    return jsonify(internal_user(_service().get(user_id)))
