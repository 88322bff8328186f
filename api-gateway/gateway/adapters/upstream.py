"""Forwarding to the internal services over one pooled HTTP client each."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
from flask import Response

from common.errors import UpstreamUnavailable
from common.http import ServiceClient
from common.identity import USER_ID_HEADER, USER_ROLE_HEADER, Caller

log = logging.getLogger(__name__)

_PASSED_RESPONSE_HEADERS = ("Content-Type", "Retry-After", "Location")
JSON = "application/json"


class Upstream:
    """One internal service. Identity headers are built here from the verified
    token, never copied from the client's request."""

    def __init__(
        self, name: str, base_url: str, *, timeout: float, pool_size: int, internal_key: str
    ) -> None:
        self.name = name
        self.client = ServiceClient(
            base_url, timeout=timeout, max_idle=pool_size, internal_key=internal_key
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        caller: Caller | None = None,
        content: bytes | None = None,
        content_type: str = JSON,
        json: Any = None,
        params: Mapping[str, Any] | str | None = None,
    ) -> httpx.Response:
        """``content`` is sent as ``content_type`` (JSON unless told otherwise: an upload
        is forwarded with the client's own type, multipart boundary included)."""
        headers = {}
        if caller is not None:
            headers[USER_ID_HEADER] = caller.user_id
            headers[USER_ROLE_HEADER] = caller.role
        if content is not None:
            headers["Content-Type"] = content_type
        try:
            return self.client.request(
                method, path, headers=headers, content=content, json=json, params=params
            )
        except httpx.TransportError as exc:
            log.warning("upstream_unavailable", extra={"upstream": self.name, "error": str(exc)})
            raise UpstreamUnavailable() from None

    def forward(
        self, method: str, path: str, *, passed_headers: Iterable[str] = (), **kwargs: Any
    ) -> Response:
        """Call the service and hand its answer (status, body, errors) to the client,
        with the usual headers and ``passed_headers`` (e.g. a download's)."""
        upstream = self.call(method, path, **kwargs)
        return relay(upstream, passed_headers)

    def close(self) -> None:
        self.client.close()


def relay(upstream: httpx.Response, passed_headers: Iterable[str] = ()) -> Response:
    response = Response(upstream.content, status=upstream.status_code)
    for names in (_PASSED_RESPONSE_HEADERS, passed_headers):
        for name in names:
            value = upstream.headers.get(name)
            if value is not None:
                response.headers[name] = value
    return response
