"""Security audit events: one JSON log line each, never a password, code or token."""

from __future__ import annotations

import logging
from typing import Any

from flask import has_request_context, request

audit_log = logging.getLogger("audit")


def audit(event: str, **fields: Any) -> None:
    if has_request_context():
        fields.setdefault("ip", request.remote_addr)
        fields.setdefault("path", request.path)
    audit_log.info(event, extra={"audit": True, **fields})
