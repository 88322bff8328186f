"""Login, MFA login, refresh-token sessions and logout.

Shared state (sessions, blocklist, MFA-pending tokens, back-off) is in Redis; if
Redis is unreachable these routes answer 503 (see ``app._store_unavailable``),
never an unlimited or unchecked attempt.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Literal

import httpx
from flask import Blueprint, Response, current_app, jsonify, request
from flask_jwt_extended import (
    get_jwt,
    set_refresh_cookies,
    unset_jwt_cookies,
    verify_jwt_in_request,
)
from pydantic import BaseModel, Field, StrictStr, ValidationError

from common.errors import ApiError, NotFound, UpstreamUnavailable, error_response
from common.validation import Schema, parse_body
from contracts.users import CredentialsCheck, LoginAccount
from gateway.adapters.state import (
    BACKOFF_THRESHOLD,
    CredentialsChanged,
    GatewayState,
    now_ms,
)
from gateway.adapters.upstream import Upstream, relay
from gateway.audit import audit
from gateway.backoff_timing import CHECK_DURATIONS
from gateway.http.cors import origin_checked
from gateway.http.guards import caller_required, current_claims, login_required
from gateway.jwt import issue_access_token, issue_refresh_token, new_jti
from gateway.openapi import documented
from gateway.settings import GatewaySettings

blueprint = Blueprint("gateway_auth", __name__, url_prefix="/api/auth")


class InvalidCredentials(ApiError):
    """The one answer for unknown account, wrong password, inactive account and back-off."""

    status, code, message = 401, "invalid_credentials", "The credentials are invalid."


class InvalidMfa(ApiError):
    status, code = 401, "invalid_mfa"
    message = "The code is invalid or the MFA token has expired; log in again if needed."


class MfaVerifyRequest(Schema):
    mfa_token: Annotated[StrictStr, Field(min_length=1, max_length=128)]
    code: Annotated[StrictStr, Field(min_length=1, max_length=32)]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int


class MfaRequiredOut(BaseModel):
    mfa_required: Literal[True] = True
    mfa_token: str


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_used_at: datetime
    ip: str
    user_agent: str
    current: bool


class SessionList(BaseModel):
    sessions: list[SessionOut]


def _state() -> GatewayState:
    return current_app.extensions["container"].state()


def _users() -> Upstream:
    return current_app.extensions["container"].users()


def _settings() -> GatewaySettings:
    return current_app.extensions["container"].settings()


def _client() -> tuple[str, str]:
    return request.remote_addr or "", request.headers.get("User-Agent", "")


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _start_session(user_id: str, role: str, amr: list[str], started_ms: int) -> Response:
    """Raises CredentialsChanged if the user's sessions were invalidated since
    ``started_ms`` (see GatewayState.create_session)."""
    settings = _settings()
    ip, agent = _client()
    refresh_jti = new_jti()
    session_id, absolute_ms = _state().create_session(
        user_id=user_id,
        role=role,
        amr=amr,
        refresh_jti=refresh_jti,
        ip=ip,
        user_agent=agent,
        idle_seconds=settings.refresh_token_idle_hours * 3600,
        absolute_seconds=settings.refresh_token_absolute_days * 86400,
        started_ms=started_ms,
    )
    return _token_response(user_id, role, amr, session_id, refresh_jti, absolute_ms)


def _token_response(
    user_id: str, role: str, amr: list[str], session_id: str, refresh_jti: str, absolute_ms: int
) -> Response:
    # One issue time for the pair: a tokens_valid_after between two clock readings
    # would otherwise revoke one of them and not the other.
    issued_ms = now_ms()
    access = issue_access_token(user_id, role, amr, session_id, issued_ms)
    refresh = issue_refresh_token(user_id, session_id, refresh_jti, absolute_ms, issued_ms)
    body = TokenOut(access_token=access, expires_in=_settings().access_token_minutes * 60)
    response = jsonify(body.model_dump())
    max_age = max(1, round((absolute_ms - datetime.now(UTC).timestamp() * 1000) / 1000))
    set_refresh_cookies(response, refresh, max_age=max_age)
    return _no_store(response)


def _summary(upstream_status: int, data: object) -> dict[str, object]:
    if upstream_status != 200 or not isinstance(data, dict):
        raise UpstreamUnavailable()
    return data


class _Relayed(Exception):  # noqa: N818 - control flow, not an error
    """An upstream answer to pass to the client as it is."""

    def __init__(self, upstream: httpx.Response) -> None:
        super().__init__(upstream.status_code)
        self.upstream = upstream


def _check_password(body: CredentialsCheck) -> dict[str, object]:
    """The users service's verdict: the user summary, or InvalidCredentials for a wrong
    password, an unknown or an inactive account alike."""
    upstream = _users().call(
        "POST",
        "/internal/credentials/verify",
        json={"identifier": body.identifier, "password": body.password},
    )
    if upstream.status_code == 401:
        raise InvalidCredentials()
    if upstream.status_code == 400:
        raise _Relayed(upstream)
    user = _summary(upstream.status_code, upstream.json())
    if not user.get("is_active"):
        raise InvalidCredentials()
    return user


def _login_account(identifier: str) -> str:
    """The back-off key of the account behind ``identifier``, from the users service,
    before any password is checked (api-gateway/README.md, "Per-account back-off")."""
    upstream = _users().call(
        "POST", "/internal/credentials/account", json={"identifier": identifier}
    )
    if upstream.status_code == 400:
        raise _Relayed(upstream)
    try:
        return LoginAccount.model_validate(_summary(upstream.status_code, upstream.json())).account
    except ValidationError:
        raise UpstreamUnavailable() from None


@blueprint.post("/login")
@documented(
    "Log in with username or email and password",
    tag="auth",
    body=CredentialsCheck,
    responses={200: TokenOut},
    errors=(401,),
    rate_limited=True,
    example={"identifier": "john@example.com", "password": "correct horse battery staple"},
)
def login() -> Response:
    body = parse_body(CredentialsCheck)
    state = _state()
    try:
        account = _login_account(body.identifier)
    except _Relayed as answer:
        return relay(answer.upstream)
    failures = state.begin_attempt(account)
    if not failures:
        audit("login_backoff", account=account)
        CHECK_DURATIONS.wait_like_a_check()
        raise InvalidCredentials()
    started_ms = now_ms()
    checking = time.monotonic()
    try:
        user = _check_password(body)
        CHECK_DURATIONS.record(time.monotonic() - checking)
    except InvalidCredentials:
        CHECK_DURATIONS.record(time.monotonic() - checking)
        audit("login_failure", account=account, failures=failures)
        if failures >= BACKOFF_THRESHOLD:
            audit("login_lockout", account=account, failures=failures)
        raise
    except _Relayed as answer:
        state.refund_attempt(account, failures)
        return relay(answer.upstream)
    except Exception:
        state.refund_attempt(account, failures)
        raise
    user_id, role = str(user["id"]), str(user["role"])
    valid_after = int(str(user["tokens_valid_after"]))
    state.prime_tokens_valid_after(user_id, valid_after, started_ms)
    if user.get("mfa_enabled"):
        token = state.create_mfa_token(user_id, account, started_ms)
        audit("login_mfa_required", user_id=user_id)
        return _no_store(jsonify(MfaRequiredOut(mfa_token=token).model_dump()))
    try:
        response = _start_session(user_id, role, ["pwd"], started_ms)
    except CredentialsChanged:
        # A reset or change landed after the check: the old password must not log in.
        # The attempt stays counted, as for a wrong password.
        audit("login_failure", user_id=user_id, reason="credentials_changed")
        raise InvalidCredentials() from None
    state.clear_failures(account)
    audit("login_success", user_id=user_id, amr=["pwd"])
    return response


@blueprint.post("/mfa/verify")
@documented(
    "Second login step: the MFA token from login and a TOTP or recovery code",
    tag="auth",
    auth="mfa_token",
    body=MfaVerifyRequest,
    responses={200: TokenOut},
    rate_limited=True,
)
def mfa_verify() -> Response:
    body = parse_body(MfaVerifyRequest)
    state = _state()
    attempt = state.mfa_attempt(body.mfa_token)
    if attempt is None:
        audit("mfa_failure", reason="token")
        raise InvalidMfa()
    upstream = _users().call(
        "POST", "/internal/mfa/verify", json={"user_id": attempt.user_id, "code": body.code}
    )
    if upstream.status_code in (400, 401):
        failures = state.record_failure(attempt.account)
        audit("mfa_failure", user_id=attempt.user_id, attempt=attempt.attempt, failures=failures)
        if failures >= BACKOFF_THRESHOLD:
            audit("login_lockout", account=attempt.account, failures=failures)
        raise InvalidMfa()
    user = _summary(upstream.status_code, upstream.json())
    if not state.consume_mfa_token(body.mfa_token):
        audit("mfa_failure", user_id=attempt.user_id, reason="token_used")
        raise InvalidMfa()
    user_id, role = str(user["id"]), str(user["role"])
    valid_after = int(str(user["tokens_valid_after"]))
    state.prime_tokens_valid_after(user_id, valid_after, attempt.started_ms)
    # The rule of gateway.jwt.token_revoked (both in ms): a password reset or change since
    # the login began ends the pending login like every session, or a thief who knew the
    # old password would still get in with a code. The users service's answer catches a
    # change before the code check; create_session catches one landing after it.
    try:
        if attempt.started_ms < valid_after:
            raise CredentialsChanged()
        response = _start_session(user_id, role, ["pwd", "otp"], attempt.started_ms)
    except CredentialsChanged:
        audit("mfa_failure", user_id=user_id, reason="credentials_changed")
        raise InvalidMfa() from None
    state.clear_failures(attempt.account)
    audit("mfa_success", user_id=user_id)
    audit("login_success", user_id=user_id, amr=["pwd", "otp"])
    return response


@blueprint.post("/refresh")
@documented(
    "Rotate the refresh cookie and get a new access token",
    tag="auth",
    auth="refresh_cookie",
    responses={200: TokenOut},
    errors=(403,),
)
@origin_checked()
def refresh() -> Response:
    verify_jwt_in_request(refresh=True, locations=["cookies"])
    claims = get_jwt()
    user_id, session_id = str(claims["sub"]), str(claims["sid"])
    ip, agent = _client()
    successor = new_jti()
    rotation = _state().rotate(
        session_id=session_id,
        user_id=user_id,
        presented_jti=str(claims["jti"]),
        new_jti=successor,
        idle_seconds=_settings().refresh_token_idle_hours * 3600,
        ip=ip,
        user_agent=agent,
    )
    if rotation.outcome != "ok":
        if rotation.outcome == "reuse":
            audit("refresh_token_reuse", user_id=user_id, session_id=session_id)
        response = error_response(401, "unauthorized", "Authentication is required.")
        unset_jwt_cookies(response)
        return _no_store(response)
    audit("refresh", user_id=user_id, session_id=session_id)
    return _token_response(
        user_id, rotation.role, list(rotation.amr), session_id, successor, rotation.absolute_ms
    )


@blueprint.post("/logout")
@documented(
    "End the current session", tag="auth", auth="user", responses={204: None}, errors=(403,)
)
@origin_checked(with_refresh_cookie_only=True)
@login_required
def logout() -> Response:
    claims = current_claims()
    caller = caller_required()
    state = _state()
    state.revoke_session(str(claims["sid"]), caller.user_id)
    state.blocklist(str(claims["jti"]), int(claims["exp"]))
    audit("logout", user_id=caller.user_id, session_id=str(claims["sid"]))
    response = Response(status=204)
    unset_jwt_cookies(response)
    return _no_store(response)


def _iso(ms: str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


@blueprint.get("/sessions")
@documented("The caller's sessions", tag="auth", auth="user", responses={200: SessionList})
@login_required
def list_sessions() -> Response:
    caller = caller_required()
    current = str(current_claims()["sid"])
    sessions = [
        SessionOut(
            id=s["id"],
            created_at=_iso(s["created"]),
            last_used_at=_iso(s["used"]),
            ip=s.get("ip", ""),
            user_agent=s.get("ua", ""),
            current=s["id"] == current,
        )
        for s in _state().sessions(caller.user_id)
    ]
    return _no_store(jsonify(SessionList(sessions=sessions).model_dump(mode="json")))


@blueprint.delete("/sessions/<session_id>")
@documented(
    "Revoke one of the caller's sessions",
    tag="auth",
    auth="user",
    responses={204: None},
    errors=(404,),
)
@login_required
def revoke_session(session_id: str) -> Response:
    caller = caller_required()
    if not _state().revoke_session(session_id, caller.user_id):
        raise NotFound("The session was not found.", code="session_not_found")
    audit("session_revoked", user_id=caller.user_id, session_id=session_id)
    return Response(status=204)
