"""The one way to build an outbound HTTP client: pooled, with timeouts, and
forwarding the request id and the internal API key on every call.

Build one client per downstream at start-up and reuse it; a client per request
costs a TCP handshake every time.
"""

from __future__ import annotations

import httpx

from common.request_context import REQUEST_ID_HEADER, current_request_id

INTERNAL_KEY_HEADER = "X-Internal-Key"


class _RequestIdAuth(httpx.Auth):
    """An auth hook is the cheapest per-request header injection httpx offers."""

    def __init__(self, internal_key: str) -> None:
        self.internal_key = internal_key

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers[REQUEST_ID_HEADER] = current_request_id()
        if self.internal_key:
            request.headers[INTERNAL_KEY_HEADER] = self.internal_key
        yield request


def make_http_client(
    base_url: str,
    *,
    timeout: float = 5.0,
    connect_timeout: float = 2.0,
    max_connections: int = 100,
    internal_key: str = "",
) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        auth=_RequestIdAuth(internal_key),
        follow_redirects=False,
    )
