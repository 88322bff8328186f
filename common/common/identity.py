"""Who is calling, as the gateway vouches for it.

The gateway verifies the JWT, strips any identity headers the client sent and
sets these two; services behind it trust them because the internal API key
proves the call came through the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import request

from common.errors import Forbidden, Unauthorized

USER_ID_HEADER = "X-User-Id"
USER_ROLE_HEADER = "X-User-Role"
IDENTITY_HEADERS = (USER_ID_HEADER, USER_ROLE_HEADER)
# Set by the users service on an answer that ends a user's sessions (password, MFA, role,
# deletion); the gateway drops its cached state for that user and never relays the header.
SESSIONS_INVALIDATED_HEADER = "X-Sessions-Invalidated"
ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Caller:
    user_id: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def current_caller() -> Caller | None:
    user_id = request.headers.get(USER_ID_HEADER)
    if not user_id:
        return None
    return Caller(user_id=user_id, role=request.headers.get(USER_ROLE_HEADER, "user"))


def require_caller() -> Caller:
    caller = current_caller()
    if caller is None:
        raise Unauthorized()
    return caller


def require_admin() -> Caller:
    caller = require_caller()
    if not caller.is_admin:
        raise Forbidden("This action requires the admin role.")
    return caller
