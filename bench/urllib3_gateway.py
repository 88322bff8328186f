"""The real gateway with its internal calls over urllib3 instead of ``common/keepalive.py``.

The benchmark's check on the hand-written transport: ``create_app()`` builds the
gateway exactly as deployed (``gateway.create_app``) and swaps each upstream's
:class:`~common.http.ServiceClient` for :class:`Urllib3ServiceClient`, whose
``request()`` goes through one ``urllib3.HTTPConnectionPool`` per service. Everything
else (token checks, Redis, Flask, gunicorn) is the same code, so the two gateways'
CPU per forwarded request differ by the transport alone. Never deployed.

The same request goes on the wire: Host, X-Internal-Key, X-Request-ID, the caller's
headers, Content-Type and Content-Length as ``ServiceClient`` writes them (urllib3's
own User-Agent and Accept-Encoding are left out). The answer is read whole and handed
back as an ``httpx.Response``; urllib3's errors become ``httpx.TransportError``s, so
the gateway still answers 503 when a service is unreachable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import urllib3
from flask import Flask
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util import SKIP_HEADER

import gateway
from common.http import _BODY_METHODS, Params, ServiceClient, _json_bytes, _target
from common.request_context import REQUEST_ID_HEADER, current_request_id
from gateway.adapters.upstream import Upstream
from gateway.settings import GatewaySettings

# As KeepAliveTransport: these may go again once when their connection broke.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _transport_error(exc: HTTPError) -> httpx.TransportError:
    # NewConnectionError is a ConnectTimeoutError in urllib3: test it first.
    if isinstance(exc, NewConnectionError):
        return httpx.ConnectError(str(exc))
    if isinstance(exc, ConnectTimeoutError):
        return httpx.ConnectTimeout(str(exc))
    if isinstance(exc, ReadTimeoutError):
        return httpx.ReadTimeout(str(exc))
    if isinstance(exc, ProtocolError):
        return httpx.ReadError(str(exc))
    return httpx.TransportError(str(exc))


class Urllib3ServiceClient(ServiceClient):
    """``ServiceClient`` with ``request()`` over a ``urllib3.HTTPConnectionPool``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
        max_idle: int = 100,
        internal_key: str = "",
    ) -> None:
        super().__init__(
            base_url,
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_idle=max_idle,
            internal_key=internal_key,
        )
        host, port = self._address
        # Up to max_idle connections kept, more opened when all are busy (block=False),
        # no retries or redirects of urllib3's own: request() decides.
        self._pool = urllib3.HTTPConnectionPool(
            host,
            port,
            maxsize=max_idle,
            block=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=timeout),
            retries=False,
        )
        self._prefix = self._path_prefix.decode("ascii")
        self._base_headers = {
            **{name.decode(): value.decode() for name, value in self._fixed_headers},
            "User-Agent": SKIP_HEADER,
            "Accept-Encoding": SKIP_HEADER,
        }

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        json: Any = None,
        params: Params = None,
    ) -> httpx.Response:
        outgoing = {**self._base_headers, REQUEST_ID_HEADER: current_request_id()}
        if json is not None:
            content = _json_bytes(json)
            outgoing["Content-Type"] = "application/json"
        if headers:
            outgoing.update(headers)
        if content is not None or method in _BODY_METHODS:
            outgoing["Content-Length"] = str(len(content or b""))
        target = self._prefix + _target(path, params).decode("ascii")
        try:
            try:
                answer = self._urlopen(method, target, content, outgoing)
            except ProtocolError:
                # The server may close a kept-alive connection as we reuse it: an idempotent
                # request goes again once, as with KeepAliveTransport. Timeouts do not.
                if method not in _IDEMPOTENT:
                    raise
                answer = self._urlopen(method, target, content, outgoing)
        except HTTPError as exc:
            raise _transport_error(exc) from exc
        response = httpx.Response(answer.status, headers=list(answer.headers.items()))
        response._content = answer.data  # noqa: SLF001 - already read whole
        return response

    def _urlopen(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> urllib3.BaseHTTPResponse:
        return self._pool.urlopen(
            method,
            target,
            body=body,
            headers=headers,
            redirect=False,
            preload_content=True,  # read whole; the connection goes back to the pool
            decode_content=False,  # as ServiceClient: the body as the service sent it
        )

    def close(self) -> None:
        self._pool.close()
        super().close()


def create_app() -> Flask:
    settings = GatewaySettings()
    app = gateway.create_app(settings)
    container = app.extensions["container"]
    for provider in (container.users, container.courses, container.enrolments):
        upstream: Upstream = provider()
        upstream.client.close()
        upstream.client = Urllib3ServiceClient(
            upstream.client.base_url,
            timeout=settings.upstream_timeout,
            max_idle=settings.upstream_pool_size,
            internal_key=settings.internal_api_key.get_secret_value(),
        )
    return app
