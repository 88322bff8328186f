"""Who may call a gateway route: JWT verification and role checks."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g

from common.errors import Forbidden, Unauthorized
from common.identity import Caller
from gateway.access import verified_claims

F = TypeVar("F", bound=Callable[..., Any])


def _verify(optional: bool = False) -> Caller | None:
    if "caller" in g:
        # Already verified for this request (the per-account rate limit's key runs
        # before the route's guard): one decode and one revocation check are enough.
        return current_caller()
    claims = verified_claims(optional=optional)
    if claims is None:
        return None
    caller = Caller(user_id=str(claims["sub"]), role=str(claims.get("role", "user")))
    g.caller = caller
    g.claims = claims
    return caller


def current_claims() -> dict[str, Any]:
    """The verified access-token claims of a route behind one of the guards below."""
    claims = g.get("claims")
    if claims is None:
        raise Unauthorized()
    return cast(dict[str, Any], claims)


def current_caller() -> Caller | None:
    return cast(Caller | None, g.get("caller"))


def verified_caller() -> Caller:
    """The caller of a route that needs one, verifying the token if no guard has yet."""
    caller = _verify()
    if caller is None:
        raise Unauthorized()
    return caller


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
                raise Forbidden(f"This action requires the {' or '.join(roles)} role.")
            return fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorator
