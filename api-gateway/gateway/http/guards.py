"""Who may call a gateway route: JWT verification and role checks."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g
from flask_jwt_extended import get_jwt, verify_jwt_in_request

from common.errors import Forbidden, Unauthorized
from common.identity import Caller

F = TypeVar("F", bound=Callable[..., Any])


def _verify(optional: bool = False) -> Caller | None:
    verify_jwt_in_request(optional=optional, locations=["headers"])
    claims = get_jwt()
    if not claims:
        return None
    caller = Caller(user_id=str(claims["sub"]), role=str(claims.get("role", "user")))
    g.caller = caller
    return caller


def current_caller() -> Caller | None:
    return cast(Caller | None, g.get("caller"))


def caller_required() -> Caller:
    caller = current_caller()
    if caller is None:
        raise Unauthorized()
    return caller


def login_required(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _verify()
        return fn(*args, **kwargs)

    return cast(F, wrapper)


def login_optional(fn: F) -> F:
    """A public route that still recognises a caller who sends a token."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _verify(optional=True)
        return fn(*args, **kwargs)

    return cast(F, wrapper)


def roles_required(*roles: str) -> Callable[[F], F]:
    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = _verify()
            if caller is None or caller.role not in roles:
                raise Forbidden("This action requires the admin role.")
            return fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorator
