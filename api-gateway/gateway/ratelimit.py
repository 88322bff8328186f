"""Per-client-IP limits on the unauthenticated auth and account routes.

The key is ``request.remote_addr``, which ProxyFix (``x_for=1``) takes from the
one hop we trust (nginx sets ``X-Forwarded-For $remote_addr``, overwriting what
the client sent), so a client cannot choose its bucket. The counters live in
Redis (moving window: exact "N in any window"), so the limit holds across every
worker and replica. A route opts in with ``@documented(..., rate_limited=True)``.
"""

from __future__ import annotations

import math
import time

from flask import Flask, Response
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from common.errors import error_response
from gateway.adapters.state import REDIS_TIMEOUT
from gateway.audit import audit
from gateway.openapi import DOC_ATTRIBUTE
from gateway.settings import GatewaySettings


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
    # The limited routes are checked by their own decorator (below); the app-wide
    # before_request check would only cost every forwarded request its time.
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    for endpoint, view in list(app.view_functions.items()):
        operation = getattr(view, DOC_ATTRIBUTE, None)
        if operation is not None and operation.rate_limited:
            app.view_functions[endpoint] = limiter.limit(settings.auth_rate_limit)(view)  # type: ignore[assignment]

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(_exc: RateLimitExceeded) -> Response:
        current = limiter.current_limit
        retry_after = 1
        if current is not None:
            retry_after = max(1, math.ceil(current.window[0] - time.time()))
        audit("rate_limited", retry_after=retry_after)
        return error_response(
            429,
            "rate_limited",
            "Too many requests; try again later.",
            headers={"Retry-After": str(retry_after)},
        )

    return limiter
