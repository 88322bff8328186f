"""Fakturownia API client: one pooled httpx client, explicit timeouts.

The API token travels in the JSON body (POST) or the query string (GET), as the
Fakturownia API wants it; it is never logged, and errors never carry the URL.
Each kind of answer is its own exception so the worker can decide: 401 (our
token is wrong), 422 (the data was refused, field messages attached; an
``oid`` already taken is :class:`OidTaken`), 429/5xx/timeouts/transport errors
(:class:`FakturowniaUnavailable`, retry later).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import httpx

from enrolments.domain import money

log = logging.getLogger(__name__)

LIST_PAGE = 100  # the API's largest page
MAX_RETRY_AFTER_SECONDS = 3600.0
MAX_LOOKUP_PAGES = 500  # bounds a lookup at 50 000 invoices; None after that means "retry"
_TOKEN_IN_TEXT = re.compile(r"(api_token=)[^&\s\"']+")


class RedactApiToken(logging.Filter):
    """httpx logs every request URL at INFO; GETs carry ``api_token`` in the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_token=" in message:
            record.msg, record.args = _TOKEN_IN_TEXT.sub(r"\1[redacted]", message), None
        return True


def _install_redaction() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactApiToken) for f in logger.filters):
            logger.addFilter(RedactApiToken())


class FakturowniaError(Exception):
    """Any failure of a Fakturownia call; the message never contains the token."""


class FakturowniaUnavailable(FakturowniaError):
    """Try again later: 429, 5xx, a timeout, a dropped connection."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FakturowniaUnauthorized(FakturowniaError):
    """401: the API token is wrong or revoked; a configuration problem."""


class FakturowniaRejected(FakturowniaError):
    """422: the invoice data was refused. ``fields`` holds the per-field messages."""

    def __init__(self, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class OidTaken(FakturowniaRejected):
    """422 on ``oid``: an invoice with our oid exists already (oid_unique)."""


@dataclass(frozen=True)
class InvoiceRequest:
    oid: str
    buyer_name: str
    buyer_email: str
    position_name: str
    total_price_gross: Decimal
    currency: str
    sell_date: date
    issue_date: date
    paid_date: date


@dataclass(frozen=True)
class IssuedInvoice:
    id: int
    number: str
    view_url: str


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    # "inf" or a year would overflow the schedule or park the invoice for good.
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


class FakturowniaClient:
    def __init__(
        self,
        base_url: str,
        api_token: str,
        *,
        seller_name: str,
        timeout: float = 10.0,
        tax: int = 23,
        max_connections: int = 20,
    ) -> None:
        _install_redaction()
        self._token = api_token
        self.seller_name = seller_name
        self.tax = tax
        self.client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"FakturowniaClient({self.client.base_url!s})"

    def invoice_body(self, invoice: InvoiceRequest) -> dict[str, Any]:
        return {
            "api_token": self._token,
            "invoice": {
                "kind": "vat",
                "number": None,
                "sell_date": invoice.sell_date.isoformat(),
                "issue_date": invoice.issue_date.isoformat(),
                "payment_to": invoice.paid_date.isoformat(),
                "buyer_name": invoice.buyer_name,
                "buyer_email": invoice.buyer_email,
                "seller_name": self.seller_name,
                "status": "paid",
                "paid_date": invoice.paid_date.isoformat(),
                "currency": invoice.currency,
                "oid": invoice.oid,
                "oid_unique": "yes",
                "positions": [
                    {
                        "name": invoice.position_name,
                        "tax": self.tax,
                        # A string from the decimal: never a float, never truncated.
                        "total_price_gross": money(invoice.total_price_gross),
                        "quantity": 1,
                    }
                ],
            },
        }

    def create_invoice(self, invoice: InvoiceRequest) -> IssuedInvoice:
        response = self._send("POST", "/invoices.json", json=self.invoice_body(invoice))
        if response.status_code in (200, 201):
            return self.parse_invoice(self._json(response))
        self._raise_for(response, invoice.oid)
        raise AssertionError("unreachable")

    def find_by_oid(self, oid: str) -> IssuedInvoice | None:
        """The invoice carrying our oid, or None. The oid filter is sent but not relied
        on: the documented list API pages (``per_page`` ≤ 100) and defaults to this
        month, so every period is asked for and pages are scanned until the oid shows up
        or the list ends."""
        params = {"api_token": self._token, "oid": oid, "period": "all", "per_page": LIST_PAGE}
        for page in range(1, MAX_LOOKUP_PAGES + 1):
            response = self._send("GET", "/invoices.json", params={**params, "page": page})
            if response.status_code != 200:
                self._raise_for(response, oid)
            items = self._json(response)
            if not isinstance(items, list):
                raise FakturowniaUnavailable("Fakturownia listed invoices without a list")
            for item in items:
                if isinstance(item, dict) and str(item.get("oid")) == oid:
                    return self.parse_invoice(item)
            if len(items) < LIST_PAGE:
                return None
        log.warning("fakturownia_oid_lookup_gave_up", extra={"ref": oid})
        return None

    def get_invoice(self, invoice_id: int) -> IssuedInvoice | None:
        response = self._send(
            "GET", f"/invoices/{invoice_id}.json", params={"api_token": self._token}
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            self._raise_for(response, str(invoice_id))
        return self.parse_invoice(self._json(response))

    def close(self) -> None:
        self.client.close()

    def parse_invoice(self, data: Any) -> IssuedInvoice:
        if not isinstance(data, dict) or "id" not in data:
            raise FakturowniaUnavailable("Fakturownia answered without an invoice id")
        view_url = str(data.get("view_url") or "")
        if not view_url and data.get("token"):
            # The public page of an invoice is /invoice/<token> on the account's domain.
            view_url = f"{self.client.base_url!s}".rstrip("/") + f"/invoice/{data['token']}"
        return IssuedInvoice(
            id=int(data["id"]), number=str(data.get("number") or ""), view_url=view_url
        )

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise FakturowniaUnavailable(f"Fakturownia timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise FakturowniaUnavailable(
                f"Fakturownia unreachable ({type(exc).__name__})"
            ) from None

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise FakturowniaUnavailable(
                f"Fakturownia answered {response.status_code} without JSON"
            ) from None

    def _raise_for(self, response: httpx.Response, ref: str) -> None:
        status = response.status_code
        if status == 401:
            log.error("fakturownia_unauthorized", extra={"ref": ref})
            raise FakturowniaUnauthorized("Fakturownia refused the API token (401)")
        if status == 422:
            body = self._json(response)
            message = body.get("message") if isinstance(body, dict) else body
            fields = message if isinstance(message, dict) else {}
            text = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in fields.items()) or str(
                message
            )
            if "oid" in fields:
                raise OidTaken(f"Fakturownia: {text}", fields)
            raise FakturowniaRejected(f"Fakturownia refused the invoice: {text}", fields)
        if status == 429 or status >= 500:
            raise FakturowniaUnavailable(
                f"Fakturownia answered {status}", retry_after=_retry_after(response)
            )
        raise FakturowniaRejected(f"Fakturownia answered {status}")
