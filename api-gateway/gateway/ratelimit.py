"""Per-client-IP limits on the unauthenticated auth and account routes, and
per-account limits on the routes that check a logged-in caller's password.

The IP key is ``request.remote_addr``, which ProxyFix (``x_for=1``) takes from the
one hop we trust (nginx sets ``X-Forwarded-For $remote_addr``, overwriting what
the client sent), so a client cannot choose its bucket. A route opts in with
``@documented(..., rate_limited=True)``; each such route has its own bucket.

The account key is the user id of the verified access token, so whoever holds a
stolen token gets the same few password guesses from any number of addresses, and
other users behind the same address are unaffected. The routes with
``@documented(..., account_limited=True)`` share one bucket per user: the guesses
cannot be spread over them.

The counters live in Redis (moving window: exact "N in any window"), so the limits
hold across every worker and replica.
"""

from __future__ import annotations

import math
import time
from typing import Any

from flask import Flask, Response
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from common.errors import error_response
from gateway.adapters.state import REDIS_TIMEOUT
from gateway.audit import audit
from gateway.http.guards import current_caller, verified_caller
from gateway.openapi import DOC_ATTRIBUTE
from gateway.settings import GatewaySettings

ACCOUNT_SCOPE = "account"


def caller_key() -> str:
    """The caller's user id, from a verified token: the limit is checked before the
    route's guard runs, and an unverified ``sub`` would let anyone spend another
    user's bucket (a missing or bad token is the guard's 401)."""
    return f"user:{verified_caller().user_id}"


def init_rate_limits(app: Flask, settings: GatewaySettings) -> Limiter:
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=settings.redis_url or "memory://",
        storage_options=(
            {"socket_timeout": REDIS_TIMEOUT, "socket_connect_timeout": REDIS_TIMEOUT}  # type: ignore[dict-item]
            if settings.redis_url
            else {}
        ),
        strategy="moving-window",
        key_prefix="gw-limit",
        swallow_errors=False,
        headers_enabled=False,
    )
    _drop_app_wide_hooks(app, limiter)
    _limit_routes(app, limiter, settings)

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(_exc: RateLimitExceeded) -> Response:
        current = limiter.current_limit
        retry_after = 1
        if current is not None:
            retry_after = max(1, math.ceil(current.window[0] - time.time()))
        caller = current_caller()
        audit("rate_limited", retry_after=retry_after, user_id=caller and caller.user_id)
        return error_response(
            429,
            "rate_limited",
            "Too many requests; try again later.",
            headers={"Retry-After": str(retry_after)},
        )

    return limiter


def _drop_app_wide_hooks(app: Flask, limiter: Limiter) -> None:
    """Keep flask-limiter off the routes without limits: they would pay its hooks' time.

    - the before_request check: the limited routes are checked by their own decorator;
    - the after_request hook only adds rate-limit headers (disabled) and applies
      ``deduct_when`` conditions (none here: a limit that needs one must bring the hook back);
    - the teardown only resets the limiter's per-request state, which lives on the
      request context and ends with it anyway.
    """
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    app.after_request_funcs[None] = [
        hook
        for hook in app.after_request_funcs[None]
        if getattr(hook, "func", None) is not Limiter._Limiter__inject_headers  # type: ignore[attr-defined]
    ]
    app.teardown_request_funcs[None].remove(limiter._Limiter__release_context)  # type: ignore[attr-defined]


def _limit_routes(app: Flask, limiter: Limiter, settings: GatewaySettings) -> None:
    """Wrap the views that opted in (``rate_limited`` / ``account_limited``)."""
    per_account = limiter.shared_limit(
        settings.account_rate_limit, scope=ACCOUNT_SCOPE, key_func=caller_key
    )
    for endpoint, view in list(app.view_functions.items()):
        operation = getattr(view, DOC_ATTRIBUTE, None)
        if operation is None:
            continue
        limited: Any = view  # flask-limiter's decorators are typed for async views too
        if operation.rate_limited:
            limited = limiter.limit(settings.auth_rate_limit)(limited)
        if operation.account_limited:
            limited = per_account(limited)
        app.view_functions[endpoint] = limited
