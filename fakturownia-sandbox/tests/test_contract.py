"""Contract tests: our Fakturownia client against the stand-in, over a real socket."""

from __future__ import annotations

import logging
import time
from datetime import date
from decimal import Decimal

import httpx
import pytest

from devtools.sandbox import Sandbox
from enrolments.adapters.fakturownia import (
    FakturowniaClient,
    FakturowniaRejected,
    FakturowniaUnauthorized,
    FakturowniaUnavailable,
    InvoiceRequest,
    OidTaken,
)
from fakturownia_sandbox import create_app
from fakturownia_sandbox.app import SandboxSettings


def request(oid: str = "enrolment-1", price: str = "199.99", **overrides) -> InvoiceRequest:
    values = {
        "oid": oid,
        "buyer_name": "Ada Lovelace",
        "buyer_email": "ada@example.com",
        "position_name": "Python for Data",
        "total_price_gross": Decimal(price),
        "currency": "PLN",
        "sell_date": date(2030, 1, 2),
        "issue_date": date(2030, 1, 2),
        "paid_date": date(2030, 1, 2),
    }
    values.update(overrides)
    return InvoiceRequest(**values)


@pytest.fixture
def client(sandbox: Sandbox):
    client = FakturowniaClient(sandbox.url, sandbox.token, seller_name="Seller", timeout=0.5)
    yield client
    client.close()


def test_create_then_read_back_by_id_and_oid_with_exact_money(client, sandbox):
    issued = client.create_invoice(request(price="199.99"))
    assert issued.id > 0
    assert issued.number
    assert issued.view_url.startswith(sandbox.url)
    assert client.get_invoice(issued.id) == issued
    assert client.find_by_oid("enrolment-1") == issued
    assert client.find_by_oid("enrolment-2") is None
    assert client.get_invoice(999_999) is None
    [stored] = sandbox.invoices()
    assert stored["positions"][0]["total_price_gross"] == "199.99"
    assert stored["price_gross"] == "199.99"
    assert stored["seller_name"] == "Seller"
    assert (stored["status"], stored["kind"], stored["currency"]) == ("paid", "vat", "PLN")


def test_body_carries_decimal_strings_never_floats(client):
    body = client.invoice_body(request(price="0.10"))
    position = body["invoice"]["positions"][0]
    assert position == {
        "name": "Python for Data",
        "tax": 23,
        "total_price_gross": "0.10",
        "quantity": 1,
    }
    assert body["invoice"]["oid_unique"] == "yes"
    assert body["invoice"]["number"] is None


def test_oid_unique_refuses_a_second_invoice(client, sandbox):
    first = client.create_invoice(request())
    with pytest.raises(OidTaken) as taken:
        client.create_invoice(request())
    assert "oid" in taken.value.fields
    assert client.find_by_oid("enrolment-1") == first
    assert len(sandbox.invoices()) == 1


def test_bad_token_is_401_with_fakturownia_body(sandbox, caplog):
    bad = FakturowniaClient(sandbox.url, "wrong-token-value", seller_name="S", timeout=1)
    raw = httpx.post(f"{sandbox.url}/invoices.json", json={"api_token": "x", "invoice": {}})
    assert raw.status_code == 401
    assert raw.json() == {
        "code": "error",
        "message": "You must be logged in to gain access to the site",
    }
    with caplog.at_level(logging.DEBUG), pytest.raises(FakturowniaUnauthorized):
        bad.create_invoice(request())
    with pytest.raises(FakturowniaUnauthorized):
        bad.find_by_oid("enrolment-1")
    ours = [r.getMessage() for r in caplog.records if r.name != "werkzeug"]
    assert ours
    assert not any("wrong-token-value" in line for line in ours)
    bad.close()


def test_missing_fields_are_422_with_field_messages(client, sandbox):
    raw = httpx.post(
        f"{sandbox.url}/invoices.json",
        json={"api_token": sandbox.token, "invoice": {"kind": "vat"}},
    )
    assert raw.status_code == 422
    assert raw.json()["code"] == "error"
    assert set(raw.json()["message"]) == {"buyer_name", "positions"}
    with pytest.raises(FakturowniaRejected) as refused:
        client.create_invoice(request(buyer_name=""))
    assert not isinstance(refused.value, OidTaken)
    assert set(refused.value.fields) == {"buyer_name"}


def test_server_errors_and_rate_limits_are_retryable(client, sandbox):
    sandbox.set_faults(error_rate=1.0)
    with pytest.raises(FakturowniaUnavailable):
        client.create_invoice(request())
    sandbox.set_faults(rate_limit_rate=1.0)
    with pytest.raises(FakturowniaUnavailable) as limited:
        client.create_invoice(request())
    assert limited.value.retry_after == 1.0
    sandbox.set_faults(drop_rate=1.0)
    with pytest.raises(FakturowniaUnavailable):
        client.create_invoice(request())
    assert sandbox.invoices() == []


def test_succeed_then_time_out_creates_the_invoice_and_the_oid_finds_it(client, sandbox):
    sandbox.set_faults(timeout_rate=1.0, hang_seconds=1.0)
    started = time.monotonic()
    with pytest.raises(FakturowniaUnavailable, match="timed out"):
        client.create_invoice(request())
    assert time.monotonic() - started < 0.9
    sandbox.set_faults()
    assert len(sandbox.invoices()) == 1
    with pytest.raises(OidTaken):
        client.create_invoice(request())
    assert client.find_by_oid("enrolment-1") is not None


def test_latency_is_added(client, sandbox):
    sandbox.set_faults(latency=0.2)
    started = time.monotonic()
    client.create_invoice(request())
    assert time.monotonic() - started >= 0.2


def test_faults_from_the_environment(monkeypatch):
    monkeypatch.setenv("FAKTUROWNIA_API_TOKEN", "env-token")
    monkeypatch.setenv("SANDBOX_ERROR_RATE", "0.5")
    monkeypatch.setenv("SANDBOX_HANG_SECONDS", "3")
    app = create_app(SandboxSettings())
    admin = app.test_client()
    faults = admin.get("/__admin/faults").get_json()
    assert (faults["error_rate"], faults["hang_seconds"]) == (0.5, 3.0)
    bad = admin.put("/__admin/faults", json={"error_rate": 2})
    assert bad.status_code >= 400
    created = admin.post(
        "/invoices.json",
        json={
            "api_token": "env-token",
            "invoice": {"buyer_name": "X", "positions": [{"name": "P", "total_price_gross": "1"}]},
        },
    )
    assert created.status_code in (201, 500)


def test_repr_never_shows_the_token(client, sandbox):
    assert sandbox.token not in repr(client)


def test_oid_lookup_scans_every_page_when_the_api_ignores_the_oid_filter(client, sandbox):
    sandbox.set_faults(ignore_oid_filter=True)
    issued = [client.create_invoice(request(oid=f"enrolment-{n}")) for n in range(1, 231)]
    assert client.find_by_oid("enrolment-230") == issued[-1]  # on the third page of 100
    assert client.find_by_oid("enrolment-17") == issued[16]
    assert client.find_by_oid("enrolment-999") is None


def test_the_stand_in_lists_like_the_api_pages_and_this_month_by_default(client, sandbox):
    for n in range(1, 31):
        client.create_invoice(request(oid=f"enrolment-{n}"))
    listed = httpx.get(f"{sandbox.url}/invoices.json", params={"api_token": sandbox.token})
    assert len(listed.json()) == 25
    stored = sandbox.app.extensions["sandbox"].invoices
    stored[min(stored)]["created_at"] = "2020-01-01T00:00:00"  # enrolment-1, years ago
    every = httpx.get(
        f"{sandbox.url}/invoices.json",
        params={"api_token": sandbox.token, "period": "all", "per_page": 100},
    )
    this_month = httpx.get(
        f"{sandbox.url}/invoices.json", params={"api_token": sandbox.token, "per_page": 100}
    )
    assert (len(every.json()), len(this_month.json())) == (30, 29)
    assert client.find_by_oid("enrolment-1") is not None  # an old invoice is still found


def test_a_view_url_is_built_from_the_invoice_token_when_the_api_leaves_it_out(client, sandbox):
    parsed = client.parse_invoice({"id": 7, "number": "FV 7/01/2030", "token": "abc"})
    assert parsed.view_url == f"{sandbox.url}/invoice/abc"
    with pytest.raises(FakturowniaUnavailable):
        client.parse_invoice({"number": "no id"})
