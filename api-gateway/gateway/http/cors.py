"""Which web pages may use the API from a browser: CORS, and the Origin check of the
routes that a cookie authenticates.

- **CORS.** A page on one of ``CORS_ALLOWED_ORIGINS`` may call the API with the
  user's credentials: a preflight (``OPTIONS`` with ``Access-Control-Request-Method``)
  answers 204 with the allowed methods and headers, and every answer to such a page
  names its origin in ``Access-Control-Allow-Origin`` (never ``*``) with
  ``Access-Control-Allow-Credentials: true``. Any other origin gets no CORS header,
  so its page cannot read an answer or send a non-simple request. With origins
  listed, every answer carries ``Vary: Origin`` (a cache must not hand one origin's
  answer to another).
- **Origin check.** CORS does not stop a cross-site ``<form>`` or a "simple" request
  from being *sent*, and a browser attaches the refresh cookie to it. The refresh
  cookie is ``SameSite=Strict`` and refresh needs the double-submit CSRF header, and on
  top of both, :func:`origin_checked` refuses (403 ``origin_not_allowed``, before
  anything is minted or revoked) a request whose ``Origin`` — or, without one, the
  origin of its ``Referer`` — is present and is neither the platform's own origin nor
  a listed one. A request with neither header (curl, a server, a mobile app) passes:
  only browsers send them, and a browser always sends ``Origin`` on a cross-origin POST.

The platform's own origin is ``PUBLIC_ORIGIN`` when set, and always the origin the
request was addressed to: nginx's scheme (``X-Forwarded-Proto``) and the Host the
client sent (``X-Forwarded-Host``; both through ProxyFix, one trusted hop). A browser
cannot choose either for a request to our host.

nginx's own answers (413, 414, 431, 502–504, …) carry no CORS headers: a listed page
sees them as a network error, not as the envelope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, Response, current_app, request

from common.errors import ApiError
from gateway.audit import audit
from gateway.settings import GatewaySettings, origin_of

F = TypeVar("F", bound=Callable[..., Any])

ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type, X-CSRF-TOKEN, X-Request-ID"
EXPOSED_HEADERS = "X-Request-ID, Retry-After"
PREFLIGHT_MAX_AGE_SECONDS = 600
EXTENSION = "gateway.origins"


class OriginNotAllowed(ApiError):
    status, code = 403, "origin_not_allowed"
    message = "Requests from this origin are not allowed."


@dataclass(frozen=True)
class OriginPolicy:
    listed: frozenset[str]
    public: str | None

    def cors_allows(self, origin: str) -> bool:
        return origin_of(origin) in self.listed

    def request_origin_allowed(self) -> tuple[bool, str]:
        """(allowed, what the request claimed) for the request being handled."""
        claimed = request.headers.get("Origin") or request.headers.get("Referer") or ""
        if not claimed:
            return True, ""
        origin = origin_of(claimed)
        if origin is None:  # "null" (a sandboxed frame, a privacy redirect) or garbage
            return False, claimed
        if origin in self.listed or origin == self.public:
            return True, origin
        return origin == origin_of(f"{request.scheme}://{request.host}"), origin


def _policy() -> OriginPolicy:
    return cast(OriginPolicy, current_app.extensions[EXTENSION])


def origin_checked(*, with_refresh_cookie_only: bool = False) -> Callable[[F], F]:
    """Refuse a browser request from a foreign page (see the module docstring).

    ``with_refresh_cookie_only``: check only when the request carries the refresh cookie
    (a route that may, but need not, be reached with it)."""

    def decorator(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            cookie = current_app.config["JWT_REFRESH_COOKIE_NAME"]
            if not with_refresh_cookie_only or cookie in request.cookies:
                allowed, origin = _policy().request_origin_allowed()
                if not allowed:
                    audit("origin_not_allowed", origin=origin[:200])
                    raise OriginNotAllowed()
            return fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def init_cors(app: Flask, settings: GatewaySettings) -> None:
    policy = OriginPolicy(listed=settings.cors_origins, public=settings.public_origin or None)
    app.extensions[EXTENSION] = policy
    if not policy.listed:
        return

    @app.before_request
    def preflight() -> Response | None:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        origin = request.headers.get("Origin")
        if origin is None or not policy.cors_allows(origin):
            return None  # an ordinary OPTIONS, without CORS headers
        response = Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_SECONDS)
        return response

    @app.after_request
    def cors_headers(response: Response) -> Response:
        vary = response.headers.get("Vary")
        if vary is None:
            response.headers["Vary"] = "Origin"
        elif "origin" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Origin"
        origin = request.headers.get("Origin")
        if origin is not None and policy.cors_allows(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return response
