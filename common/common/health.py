"""Liveness and readiness endpoints built from named checks.

``/health/live`` answers while the process serves requests; ``/health/ready``
runs every check (a database ping, an upstream probe) and answers 503 naming
the ones that fail, so an orchestrator stops routing to the instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from flask import Blueprint, Response, jsonify

log = logging.getLogger(__name__)

Check = Callable[[], object]


def health_blueprint(checks: Mapping[str, Check]) -> Blueprint:
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/health/live")
    def live() -> Response:
        return jsonify(status="ok")

    @blueprint.get("/health/ready")
    @blueprint.get("/health")
    def ready() -> tuple[Response, int]:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception:  # noqa: BLE001 - any failure means "not ready"
                log.warning("health_check_failed", extra={"check": name}, exc_info=True)
                results[name] = "fail"
        healthy = all(result == "ok" for result in results.values())
        status = 200 if healthy else 503
        return jsonify(status="ok" if healthy else "unavailable", checks=results), status

    return blueprint
