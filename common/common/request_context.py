"""The request id of the work in progress, visible to logs and outbound calls.

A context variable rather than ``flask.g`` so that background threads (mail
sender, invoice workers) can carry an id too and so that code without Flask can
read it.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_request_id: ContextVar[str] = ContextVar("request_id", default="-")


def current_request_id() -> str:
    return _request_id.get()


def set_request_id(value: str | None) -> str:
    """Adopt a well-formed incoming id (from nginx or a caller), else mint one."""
    request_id = value if value and _VALID_ID.match(value) else uuid.uuid4().hex
    _request_id.set(request_id)
    return request_id
