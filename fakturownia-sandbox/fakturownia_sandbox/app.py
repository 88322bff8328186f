"""The Flask app of the Fakturownia stand-in.

Invoices live in memory behind a lock (one process: run it with one gunicorn
worker). Faults are read from the environment at start-up (``SANDBOX_*``) and
can be changed at run time with ``PUT /__admin/faults``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Flask, Response, abort, jsonify, request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("fakturownia_sandbox")

UNAUTHORIZED_MESSAGE = "You must be logged in to gain access to the site"
REQUIRED_FIELDS = ("buyer_name", "positions")
REQUIRED_POSITION_FIELDS = ("name", "total_price_gross")
# Listing as the API does it: pages of 25 by default, at most 100, and without
# ``period=all`` only this month's invoices.
DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100


class Faults(BaseModel):
    """What goes wrong, and how often. Shares are probabilities in [0, 1]."""

    model_config = ConfigDict(extra="forbid")

    latency: float = Field(0.0, ge=0, le=60, description="seconds added to every API call")
    error_rate: float = Field(0.0, ge=0, le=1, description="share of calls answered 500")
    rate_limit_rate: float = Field(0.0, ge=0, le=1, description="share answered 429")
    drop_rate: float = Field(0.0, ge=0, le=1, description="share of connections dropped")
    timeout_rate: float = Field(
        0.0, ge=0, le=1, description="share of creates that succeed, then answer too late"
    )
    hang_seconds: float = Field(5.0, ge=0, le=600, description="the delay of a late answer")
    ignore_oid_filter: bool = Field(
        False, description="list invoices as if the API had no oid filter (clients must scan)"
    )


class SandboxSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_prefix="SANDBOX_", populate_by_name=True)

    api_token: str = Field(
        "sandbox-token",
        validation_alias=AliasChoices("FAKTUROWNIA_API_TOKEN", "SANDBOX_API_TOKEN"),
    )
    latency: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    drop_rate: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 5.0
    seed: int | None = None

    def faults(self) -> Faults:
        return Faults.model_validate(self.model_dump(include=set(Faults.model_fields)))


@dataclass
class Stats:
    create_calls: int = 0
    created: int = 0
    oid_conflicts: int = 0
    errors: int = 0
    drops: int = 0
    late_answers: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class Store:
    invoices: dict[int, dict[str, Any]] = field(default_factory=dict)
    by_oid: dict[str, int] = field(default_factory=dict)
    next_id: int = 100_001
    stats: Stats = field(default_factory=Stats)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.invoices.clear()
            self.by_oid.clear()
            self.stats = Stats()


def _error(status: int, message: Any) -> tuple[Response, int]:
    return jsonify(code="error", message=message), status


def _missing_fields(invoice: Any) -> dict[str, list[str]]:
    if not isinstance(invoice, dict):
        return {"invoice": ["nie może być puste"]}
    problems: dict[str, list[str]] = {}
    for name in REQUIRED_FIELDS:
        if invoice.get(name) in (None, "", []):
            problems[name] = ["nie może być puste"]
    positions = invoice.get("positions")
    if isinstance(positions, list):
        for index, position in enumerate(positions):
            for name in REQUIRED_POSITION_FIELDS:
                if not isinstance(position, dict) or position.get(name) in (None, ""):
                    problems[f"positions[{index}].{name}"] = ["nie może być puste"]
            if isinstance(position, dict) and position.get("total_price_gross") not in (None, ""):
                try:
                    Decimal(str(position["total_price_gross"]))
                except InvalidOperation:
                    problems[f"positions[{index}].total_price_gross"] = ["nie jest liczbą"]
    elif positions not in (None, "", []):
        problems["positions"] = ["musi być listą"]
    return problems


def _positive(value: str | None, default: int) -> int:
    return int(value) if value and value.isdigit() and int(value) > 0 else default


def _money(value: Any) -> str:
    return f"{Decimal(str(value)).quantize(Decimal('0.01'))}"


def create_app(settings: SandboxSettings | None = None) -> Flask:
    settings = settings or SandboxSettings()
    app = Flask("fakturownia_sandbox", static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    store = Store()
    state = {"faults": settings.faults()}
    rng = random.Random(settings.seed)  # noqa: S311 - fault injection, not security
    app.extensions["sandbox"] = store

    def faults() -> Faults:
        return state["faults"]

    def roll(share: float) -> bool:
        return share > 0 and rng.random() < share

    def drop_connection() -> None:
        """Close the client's socket without an answer, as a dying proxy would."""
        store.stats.drops += 1
        sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        abort(500)

    def authorised(token: Any) -> bool:
        return isinstance(token, str) and secrets.compare_digest(
            token.encode(), settings.api_token.encode()
        )

    def public(invoice: dict[str, Any]) -> dict[str, Any]:
        return dict(invoice)

    @app.before_request
    def inject_faults() -> tuple[Response, int] | None:
        if request.path.startswith("/__admin"):
            return None
        current = faults()
        if current.latency:
            time.sleep(current.latency)
        if roll(current.drop_rate):
            drop_connection()
        if roll(current.error_rate):
            store.stats.errors += 1
            return _error(500, "Internal Server Error")
        if roll(current.rate_limit_rate):
            response, status = _error(429, "Too many requests")
            response.headers["Retry-After"] = "1"
            return response, status
        return None

    @app.post("/invoices.json")
    def create_invoice() -> tuple[Response, int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not authorised(body.get("api_token")):
            return _error(401, UNAUTHORIZED_MESSAGE)
        invoice = body.get("invoice")
        problems = _missing_fields(invoice)
        if problems:
            return _error(422, problems)
        assert isinstance(invoice, dict)
        oid = invoice.get("oid")
        with store.lock:
            store.stats.create_calls += 1
            if oid and str(invoice.get("oid_unique", "")).lower() == "yes" and oid in store.by_oid:
                store.stats.oid_conflicts += 1
                return _error(422, {"oid": ["jest już zajęte"]})
            invoice_id = store.next_id
            store.next_id += 1
            token = secrets.token_urlsafe(12)
            now = datetime.now(UTC)
            positions = [
                {**p, "total_price_gross": _money(p["total_price_gross"])}
                for p in invoice["positions"]
            ]
            record = {
                **{k: v for k, v in invoice.items() if k not in ("positions", "oid_unique")},
                "id": invoice_id,
                "number": f"FV {invoice_id - 100_000}/{now:%m}/{now:%Y}",
                "token": token,
                "view_url": f"{request.host_url.rstrip('/')}/invoice/{token}",
                "price_gross": _money(sum(Decimal(p["total_price_gross"]) for p in positions)),
                "positions": positions,
                "created_at": now.isoformat(),
            }
            store.invoices[invoice_id] = record
            if oid:
                store.by_oid.setdefault(str(oid), invoice_id)
            store.stats.created += 1
        if roll(faults().timeout_rate):
            store.stats.late_answers += 1
            time.sleep(faults().hang_seconds)
        return jsonify(public(record)), 201

    @app.get("/invoices.json")
    def list_invoices() -> tuple[Response, int]:
        if not authorised(request.args.get("api_token")):
            return _error(401, UNAUTHORIZED_MESSAGE)
        oid = None if faults().ignore_oid_filter else request.args.get("oid")
        this_month = f"{datetime.now(UTC):%Y-%m}"
        every_period = request.args.get("period") == "all"
        with store.lock:
            found = [
                public(inv)
                for inv in store.invoices.values()
                if (oid is None or str(inv.get("oid")) == oid)
                and (every_period or inv["created_at"].startswith(this_month))
            ]
        per_page = min(_positive(request.args.get("per_page"), DEFAULT_PER_PAGE), MAX_PER_PAGE)
        start = (_positive(request.args.get("page"), 1) - 1) * per_page
        return jsonify(found[start : start + per_page]), 200

    @app.get("/invoices/<int:invoice_id>.json")
    def get_invoice(invoice_id: int) -> tuple[Response, int]:
        if not authorised(request.args.get("api_token")):
            return _error(401, UNAUTHORIZED_MESSAGE)
        with store.lock:
            invoice = store.invoices.get(invoice_id)
        if invoice is None:
            return _error(404, "Nie znaleziono")
        return jsonify(public(invoice)), 200

    @app.get("/invoice/<token>")
    def view_invoice(token: str) -> tuple[str, int]:
        with store.lock:
            found = next((i for i in store.invoices.values() if i["token"] == token), None)
        if found is None:
            return "not found", 404
        return f"Invoice {found['number']}: {found['price_gross']} {found.get('currency')}", 200

    # --- admin: faults, inspection, reset (tests and local runs only) ---

    @app.get("/__admin/faults")
    def get_faults() -> Response:
        return jsonify(faults().model_dump())

    @app.put("/__admin/faults")
    def set_faults() -> Response:
        state["faults"] = Faults.model_validate(request.get_json(force=True) or {})
        log.info("faults_changed %s", state["faults"].model_dump())
        return jsonify(faults().model_dump())

    @app.get("/__admin/invoices")
    def all_invoices() -> Response:
        with store.lock:
            return jsonify(list(store.invoices.values()))

    @app.get("/__admin/stats")
    def stats() -> Response:
        with store.lock:
            return jsonify({**store.stats.as_dict(), "invoices": len(store.invoices)})

    @app.post("/__admin/reset")
    def reset() -> Response:
        store.reset()
        state["faults"] = Faults()
        return jsonify(status="ok")

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok")

    return app
