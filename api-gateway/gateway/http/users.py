"""Public users routes, validated with the users service's own models and forwarded.

Registration, activation, resend and forgot/reset are public and rate limited per
client IP; ``/me`` and MFA routes act on the caller, and those that check the caller's
password are rate limited per account (a stolen access token must not buy unlimited
password guesses); admin routes need
``role=admin``, and admins may use every route. A users-service answer carrying
``X-Sessions-Invalidated: <user_id>`` makes the gateway drop that user's cached
``tokens_valid_after`` and sessions; the header itself is never relayed.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, request
from pydantic import BaseModel

from common.errors import NotFound
from common.identity import SESSIONS_INVALIDATED_HEADER
from common.validation import parse_body, parse_query
from contracts.users import (
    ActivationRequest,
    IdentifierBody,
    IdentifierQuery,
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
from gateway.adapters.state import GatewayState
from gateway.adapters.upstream import Upstream, relay
from gateway.audit import audit
from gateway.http.guards import current_caller, login_optional, login_required, roles_required
from gateway.openapi import Link, documented

_USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

blueprint = Blueprint("gateway_users", __name__, url_prefix="/api/users")

USER_ID = {"user_id": "$response.body#/id"}
BY_USERNAME = {"identifier": "$response.body#/username"}
USER_LINKS = {
    "GetById": Link("GET /api/users/id", USER_ID),
    "GetByIdentifier": Link("GET /api/users/identifier", BY_USERNAME),
    "ChangeRole": Link("PATCH /api/users/{user_id}/role", USER_ID),
    "ResendActivation": Link("GET /api/users/activation/resend", BY_USERNAME),
    "DeleteById": Link("DELETE /api/users/id", USER_ID),
    "DeleteByIdentifier": Link("DELETE /api/users/identifier", BY_USERNAME),
}
NEW_PASSWORD_POLICY = "the new password is shorter than 12 or longer than 128 characters, or common"


class Accepted(BaseModel):
    message: str


class MfaEnrolment(BaseModel):
    provisioning_uri: str
    qr_code_base64: str


class MfaConfirmed(BaseModel):
    mfa_enabled: bool
    recovery_codes: list[str]


def _forward(
    method: str,
    path: str,
    *,
    event: str | None = None,
    body: bool = False,
    params: dict[str, Any] | None = None,
) -> Response:
    container = current_app.extensions["container"]
    users: Upstream = container.users()
    caller = current_caller()
    upstream = users.call(
        method,
        path,
        caller=caller,
        content=request.get_data() if body else None,
        params=params,
    )
    invalidated = upstream.headers.get(SESSIONS_INVALIDATED_HEADER)
    if invalidated:
        state: GatewayState = container.state()
        revoked = state.invalidate_user(invalidated)
        audit("sessions_invalidated", user_id=invalidated, sessions=revoked)
    if event is not None and upstream.is_success:
        audit(event, user_id=invalidated or (caller.user_id if caller else None))
    return relay(upstream)


def _query(model: type[Any]) -> dict[str, Any]:
    return dict(parse_query(model).model_dump(exclude_none=True))


# -- public, rate limited ------------------------------------------------------------------


@blueprint.post("/")
@documented(
    "Register an account (an admin may also choose its role)",
    tag="users",
    auth="optional",
    body=UserCreate,
    responses={201: UserOut},
    errors=(403, 409),
    valid_request_errors={
        400: NEW_PASSWORD_POLICY.replace("new ", "") + ", or password_confirmation differs"
    },
    links=USER_LINKS,
    rate_limited=True,
)
@login_optional
def register() -> Response:
    parse_body(UserCreate)
    return _forward("POST", "/users", body=True, event="user_registered")


@blueprint.patch("/activation")
@documented(
    "Activate an account with the mailed code",
    tag="users",
    body=ActivationRequest,
    responses={200: UserOut},
    valid_request_errors={400: "the code is unknown, expired or used up"},
    rate_limited=True,
)
def activate() -> Response:
    parse_body(ActivationRequest)
    return _forward("PATCH", "/users/activation", body=True, event="user_activated")


@blueprint.route("/activation/resend", methods=["GET", "POST"])
@documented(
    "Send a new activation code (same answer whether or not the account exists)",
    tag="users",
    query=IdentifierQuery,
    responses={202: Accepted},
    rate_limited=True,
    # POST takes the identifier in a JSON body, out of URLs and their logs.
    methods={"POST": {"query": None, "body": IdentifierBody}},
)
def resend_activation() -> Response:
    if request.method == "POST" and "identifier" not in request.args:
        parse_body(IdentifierBody)
        return _forward("POST", "/users/activation/resend", body=True)
    return _forward("GET", "/users/activation/resend", params=_query(IdentifierQuery))


@blueprint.post("/password/forgot")
@documented(
    "Mail a password reset link (same answer whether or not the account exists)",
    tag="users",
    body=IdentifierBody,
    responses={202: Accepted},
    rate_limited=True,
)
def forgot_password() -> Response:
    parse_body(IdentifierBody)
    return _forward("POST", "/users/password/forgot", body=True, event="password_reset_requested")


@blueprint.post("/password/reset")
@documented(
    "Set a new password with the mailed token (ends every session)",
    tag="users",
    body=ResetRequest,
    responses={200: Accepted},
    valid_request_errors={
        400: "the token is unknown, expired or used up, or " + NEW_PASSWORD_POLICY
    },
    rate_limited=True,
)
def reset_password() -> Response:
    parse_body(ResetRequest)
    return _forward("POST", "/users/password/reset", body=True, event="password_reset_done")


# -- the caller's own account ----------------------------------------------------------------


@blueprint.get("/me")
@documented("The caller's account", tag="users", auth="user", responses={200: UserOut})
@login_required
def me() -> Response:
    return _forward("GET", "/users/me")


@blueprint.patch("/me")
@documented(
    "Update the caller's profile",
    tag="users",
    auth="user",
    body=ProfileUpdate,
    responses={200: UserOut},
)
@login_required
def update_me() -> Response:
    parse_body(ProfileUpdate)
    return _forward("PATCH", "/users/me", body=True)


@blueprint.post("/me/password")
@documented(
    "Change the caller's password (ends every session)",
    tag="users",
    auth="user",
    body=PasswordChange,
    responses={200: UserOut},
    valid_request_errors={400: "the current password is wrong, or " + NEW_PASSWORD_POLICY},
    account_limited=True,
)
@login_required
def change_password() -> Response:
    parse_body(PasswordChange)
    return _forward("POST", "/users/me/password", body=True, event="password_changed")


@blueprint.patch("/mfa/enable")
@documented(
    "Start MFA enrolment: a TOTP secret and its QR code",
    tag="users",
    auth="user",
    body=PasswordOnly,
    responses={200: MfaEnrolment},
    errors=(409,),
    valid_request_errors={400: "the password is wrong"},
    account_limited=True,
)
@login_required
def mfa_enable() -> Response:
    parse_body(PasswordOnly)
    return _forward("PATCH", "/users/mfa/enable", body=True, event="mfa_enrolment_started")


@blueprint.get("/mfa/qr")
@documented(
    "The pending enrolment's QR code again",
    tag="users",
    auth="user",
    responses={200: MfaEnrolment},
    errors=(404,),
)
@login_required
def mfa_qr() -> Response:
    return _forward("GET", "/users/mfa/qr")


@blueprint.post("/mfa/confirm")
@documented(
    "Confirm MFA with a first code; returns the recovery codes once (ends every session)",
    tag="users",
    auth="user",
    body=MfaConfirm,
    responses={200: MfaConfirmed},
    errors=(404,),
)
@login_required
def mfa_confirm() -> Response:
    parse_body(MfaConfirm)
    return _forward("POST", "/users/mfa/confirm", body=True, event="mfa_enabled")


@blueprint.patch("/mfa/disable")
@documented(
    "Disable MFA with the password and a code (ends every session)",
    tag="users",
    auth="user",
    body=MfaDisable,
    responses={200: UserOut},
    errors=(409,),
    valid_request_errors={400: "the password or the code is wrong"},
    account_limited=True,
)
@login_required
def mfa_disable() -> Response:
    parse_body(MfaDisable)
    return _forward("PATCH", "/users/mfa/disable", body=True, event="mfa_disabled")


# -- admin ---------------------------------------------------------------------------------


@blueprint.get("/")
@documented(
    "List and search accounts",
    tag="users",
    auth="admin",
    query=UserListQuery,
    responses={200: UserList},
)
@roles_required("admin")
def list_users() -> Response:
    return _forward("GET", "/users", params=_query(UserListQuery))


@blueprint.get("/id")
@documented(
    "Get an account by id",
    tag="users",
    auth="admin",
    query=UserIdQuery,
    responses={200: UserOut},
    errors=(404,),
)
@roles_required("admin")
def get_by_id() -> Response:
    return _forward("GET", "/users/id", params=_query(UserIdQuery))


@blueprint.delete("/id")
@documented(
    "Delete an account by id",
    tag="users",
    auth="admin",
    query=UserIdQuery,
    responses={204: None},
    errors=(404, 409),
)
@roles_required("admin")
def delete_by_id() -> Response:
    return _forward("DELETE", "/users/id", params=_query(UserIdQuery), event="user_deleted")


@blueprint.get("/identifier")
@documented(
    "Get an account by username or email",
    tag="users",
    auth="admin",
    query=IdentifierQuery,
    responses={200: UserOut},
    errors=(404,),
)
@roles_required("admin")
def get_by_identifier() -> Response:
    return _forward("GET", "/users/identifier", params=_query(IdentifierQuery))


@blueprint.delete("/identifier")
@documented(
    "Delete an account by username or email",
    tag="users",
    auth="admin",
    query=IdentifierQuery,
    responses={204: None},
    errors=(404, 409),
)
@roles_required("admin")
def delete_by_identifier() -> Response:
    return _forward(
        "DELETE", "/users/identifier", params=_query(IdentifierQuery), event="user_deleted"
    )


@blueprint.patch("/<user_id>/role")
@documented(
    "Change an account's role (ends its sessions)",
    tag="users",
    auth="admin",
    body=RoleChange,
    responses={200: UserOut},
    errors=(404, 409),
)
@roles_required("admin")
def change_role(user_id: str) -> Response:
    if not _USER_ID.fullmatch(user_id):
        raise NotFound("The user was not found.", code="user_not_found")
    parse_body(RoleChange)
    return _forward("PATCH", f"/users/{user_id}/role", body=True, event="role_changed")
