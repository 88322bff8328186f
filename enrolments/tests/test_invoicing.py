"""Exactly-once invoicing: the outbox, the worker pool and worker processes
against real MariaDB and the Fakturownia stand-in on a real socket."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from devtools.sandbox import Sandbox
from devtools.smtp_sink import SmtpSink, message_text
from enrolments import create_app
from enrolments.adapters.clock import moment
from enrolments.adapters.fakturownia import _retry_after
from enrolments.adapters.tables import EnrolmentRecord, InvoiceJobRecord, JobRunRecord, MailRecord
from enrolments.container import Container
from enrolments.service import invoice_request
from enrolments.testing import (
    ADMIN,
    EnrolmentsEnv,
    FakeUsers,
    create_course,
    enrol,
    enrolments_settings,
    pay,
    reschedule,
    spawn_worker_process,
    start_worker_process,
    user_headers,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("enrolments_db")

# An app whose invoice jobs fail for good after three attempts, 10 ms apart.
gives_up_after_three_quick_attempts = pytest.mark.parametrize(
    "manual_app",
    [{"invoice_max_attempts": 3, "invoice_backoff_base": 0.01, "invoice_backoff_cap": 0.01}],
    indirect=True,
)


@pytest.fixture
def running_app(
    enrolments_env: EnrolmentsEnv,
    enrolments_db: None,
    fake_users: FakeUsers,
    sandbox: Sandbox,
    smtp_sink: SmtpSink,
    request: pytest.FixtureRequest,
) -> Iterator[Flask]:
    """An app that runs its invoice workers and mail relay in-process (RUN_WORKERS)."""
    overrides = getattr(request, "param", {})
    app = create_app(
        enrolments_env.settings(run_workers=True, expiry_check_interval=3600, **overrides)
    )
    yield app
    app.extensions["container"].workers().stop()
    app.extensions["container"].database().dispose()


def database(app: Flask):
    return app.extensions["container"].database()


def invoice_statuses(app: Flask) -> dict[str, int]:
    with database(app).transaction() as session:
        rows = session.execute(
            select(EnrolmentRecord.invoice_status, func.count()).group_by(
                EnrolmentRecord.invoice_status
            )
        ).all()
    return {str(status): int(count) for status, count in rows}


def paid_enrolments(app: Flask, client: FlaskClient, fake_users: FakeUsers, n: int) -> list[int]:
    course = create_course_for(app)
    ids = []
    for index in range(n):
        user = f"p{index}"
        fake_users.add(user)
        ids.append(enrol(client, user, course)["id"])
    for index, enrolment_id in enumerate(ids):
        pay(client, f"p{index}", enrolment_id)
    return ids


_courses_app: dict[str, Flask] = {}


def create_course_for(_app: Flask) -> int:
    return int(create_course(_courses_app["app"], name=f"Invoiced {time.monotonic_ns()}")["id"])


@pytest.fixture(autouse=True)
def _remember_courses_app(courses_app: Flask) -> None:
    _courses_app["app"] = courses_app


def assert_exactly_one_invoice_each(app: Flask, sandbox: Sandbox, ids: list[int]) -> None:
    invoices = sandbox.invoices()
    oids = [invoice["oid"] for invoice in invoices]
    assert len(oids) == len(set(oids)), "duplicate oid at Fakturownia"
    assert sorted(oids) == sorted(f"enrolment-{i}" for i in ids)
    by_oid = {invoice["oid"]: invoice for invoice in invoices}
    with database(app).transaction() as session:
        records = session.scalars(select(EnrolmentRecord).where(EnrolmentRecord.id.in_(ids))).all()
        payment_mails = session.scalar(
            select(func.count()).select_from(MailRecord).where(MailRecord.subject.like("Payment%"))
        )
    assert len(records) == len(ids)
    for record in records:
        invoice = by_oid[f"enrolment-{record.id}"]
        assert record.invoice_status == "issued"
        assert (record.invoice_id, record.invoice_number) == (invoice["id"], invoice["number"])
        assert invoice["positions"][0]["total_price_gross"] == f"{record.price:.2f}"
    assert payment_mails == len(ids), "one payment mail per invoice"


@pytest.fixture
def manual_app(
    enrolments_env: EnrolmentsEnv, enrolments_db: None, request: pytest.FixtureRequest
) -> Iterator[Flask]:
    """An app on the test database whose invoice jobs the test runs one at a time
    (no background workers), built from settings overridden by the test's param."""
    app = create_app(enrolments_env.settings(run_workers=False, **getattr(request, "param", {})))
    yield app
    app.extensions["container"].database().dispose()


def paid_enrolment(client: FlaskClient, fake_users: FakeUsers, courses_app: Flask) -> int:
    fake_users.add("buyer", email="ada@example.com", first_name="Ada", last_name="Lovelace")
    course = create_course(courses_app, name="Exact Money", price="199.99", currency="EUR")
    created = enrol(client, "buyer", course["id"])
    return int(pay(client, "buyer", created["id"])["id"])


def process_next(app: Flask, timeout: float = 5) -> str:
    """Claim the next due invoice job and run one attempt at it; its outcome."""
    container = app.extensions["container"]
    [job] = wait_for(
        lambda: container.invoice_outbox().claim(1), timeout, "a due invoice job", interval=0.02
    )
    return str(container.invoice_processor().process(job))


def invoice_job(app: Flask, enrolment_id: int) -> InvoiceJobRecord:
    with database(app).transaction() as session:
        return session.scalars(
            select(InvoiceJobRecord).where(InvoiceJobRecord.enrolment_id == enrolment_id)
        ).one()


def admin_view(client: FlaskClient, enrolment_id: int) -> dict[str, Any]:
    return client.get(f"/enrolment/{enrolment_id}", headers=ADMIN).get_json()


def test_fakturownia_stores_the_full_paid_vat_invoice(
    enrolments_app: Flask,
    enrolments_client: FlaskClient,
    fake_users: FakeUsers,
    sandbox: Sandbox,
    courses_app: Flask,
):
    enrolment_id = paid_enrolment(enrolments_client, fake_users, courses_app)
    paid_day = admin_view(enrolments_client, enrolment_id)["paid_at"][:10]
    before = datetime.now(UTC).date().isoformat()
    assert process_next(enrolments_app) == "issued"
    after = datetime.now(UTC).date().isoformat()
    [stored] = sandbox.invoices()
    expected = {
        "kind": "vat",
        "sell_date": paid_day,
        "paid_date": paid_day,
        "payment_to": paid_day,
        "buyer_name": "Ada Lovelace",
        "buyer_email": "ada@example.com",
        "seller_name": "Course Platform Test",
        "status": "paid",
        "currency": "EUR",
        "oid": f"enrolment-{enrolment_id}",
    }
    assert {key: stored.get(key) for key in expected} == expected
    assert stored["issue_date"] in (before, after)
    assert stored["positions"] == [
        {"name": "Exact Money", "tax": 23, "total_price_gross": "199.99", "quantity": 1}
    ]
    # oid_unique: "yes" is not echoed back; test_oid_taken_but_not_listed_yet_… shows it works.


def test_the_client_calls_the_configured_fakturownia_base_url():
    def client(**overrides: str):
        settings = enrolments_settings(fakturownia_api_token="token-1234", **overrides)
        return Container(settings=settings).fakturownia()

    by_domain = client(fakturownia_domain="acme")
    by_url = client(fakturownia_domain="acme", fakturownia_url="http://127.0.0.1:9/")
    try:
        # The public link of an invoice (sent in the payment mail) is built on the base URL.
        public = {"id": 1, "number": "FV 1", "token": "tok"}
        assert by_domain.parse_invoice(public).view_url == "https://acme.fakturownia.pl/invoice/tok"
        assert by_url.parse_invoice(public).view_url == "http://127.0.0.1:9/invoice/tok"
    finally:
        by_domain.close()
        by_url.close()


@pytest.mark.parametrize(
    "manual_app", [{"fakturownia_api_token": "revoked-token-0123456789"}], indirect=True
)
def test_a_refused_api_token_is_retried_later_not_failed(
    manual_app: Flask,
    enrolments_app: Flask,
    enrolments_client: FlaskClient,
    fake_users: FakeUsers,
    sandbox: Sandbox,
    courses_app: Flask,
):
    enrolment_id = paid_enrolment(enrolments_client, fake_users, courses_app)
    assert process_next(manual_app) == "retry"
    job = invoice_job(manual_app, enrolment_id)
    assert (job.status, job.attempts) == ("pending", 1)
    assert "401" in (job.last_error or "")
    view = admin_view(enrolments_client, enrolment_id)
    assert (view["invoice_status"], view["invoice_error"], view["invoice"]) == (
        "pending",
        None,
        None,
    )
    assert sandbox.invoices() == []
    # Once the token is right (the correctly configured app), the same job goes through.
    assert process_next(enrolments_app) == "issued"
    assert_exactly_one_invoice_each(enrolments_app, sandbox, [enrolment_id])


def test_retry_after_of_a_429_delays_the_next_attempt_at_least_that_long(
    enrolments_app: Flask,
    enrolments_client: FlaskClient,
    fake_users: FakeUsers,
    sandbox: Sandbox,
    courses_app: Flask,
):
    enrolment_id = paid_enrolment(enrolments_client, fake_users, courses_app)
    sandbox.set_faults(rate_limit_rate=1.0)  # every call: 429 with Retry-After: 1
    started = moment()
    assert process_next(enrolments_app) == "retry"
    # The test settings' backoff alone would be at most 0.05 s.
    assert invoice_job(enrolments_app, enrolment_id).available_at >= started + timedelta(seconds=1)
    assert enrolments_app.extensions["container"].invoice_outbox().claim(1) == []
    sandbox.set_faults()
    assert process_next(enrolments_app, timeout=3) == "issued"
    assert moment() >= started + timedelta(seconds=1)


@gives_up_after_three_quick_attempts
def test_reaching_max_attempts_marks_the_invoice_failed(
    manual_app: Flask,
    enrolments_client: FlaskClient,
    fake_users: FakeUsers,
    sandbox: Sandbox,
    courses_app: Flask,
):
    enrolment_id = paid_enrolment(enrolments_client, fake_users, courses_app)
    sandbox.set_faults(error_rate=1.0)
    assert [process_next(manual_app) for _ in range(3)] == ["retry", "retry", "failed"]
    view = admin_view(enrolments_client, enrolment_id)
    assert view["invoice_status"] == "failed"
    assert "gave up after 3 attempts" in view["invoice_error"]
    assert invoice_job(manual_app, enrolment_id).status == "failed"
    sandbox.set_faults()
    time.sleep(0.05)  # well past the 0.01 s backoff: a job still pending would be due
    assert manual_app.extensions["container"].invoice_outbox().claim(1) == []
    assert sandbox.invoices() == []


def test_oid_taken_but_not_listed_yet_is_retried_then_adopted_never_duplicated(
    enrolments_app: Flask,
    enrolments_client: FlaskClient,
    fake_users: FakeUsers,
    sandbox: Sandbox,
    courses_app: Flask,
):
    enrolment_id = paid_enrolment(enrolments_client, fake_users, courses_app)
    container = enrolments_app.extensions["container"]
    # An earlier attempt created the invoice (its answer was lost), and Fakturownia's
    # list does not show it yet.
    record = container.invoice_outbox().snapshot(enrolment_id)
    earlier = container.fakturownia().create_invoice(invoice_request(record))
    store = sandbox.app.extensions["sandbox"]
    with store.lock:
        unlisted = store.invoices.pop(earlier.id)
    assert process_next(enrolments_app) == "retry"
    assert invoice_job(enrolments_app, enrolment_id).status == "pending"
    assert admin_view(enrolments_client, enrolment_id)["invoice_status"] == "pending"
    stats = sandbox.stats()
    assert (stats["oid_conflicts"], stats["created"]) == (1, 1), "no second invoice was created"
    with store.lock:
        store.invoices[earlier.id] = unlisted
    assert process_next(enrolments_app) == "issued"
    assert sandbox.stats()["created"] == 1
    assert_exactly_one_invoice_each(enrolments_app, sandbox, [enrolment_id])
    assert admin_view(enrolments_client, enrolment_id)["invoice"]["id"] == earlier.id


@pytest.mark.parametrize("running_app", [{"fakturownia_timeout": 5.0}], indirect=True)
def test_paid_answers_at_once_while_fakturownia_takes_two_seconds(
    running_app: Flask, fake_users: FakeUsers, sandbox: Sandbox, smtp_sink: SmtpSink, courses_app
):
    client = running_app.test_client()
    fake_users.add("u1", email="ada@example.com", first_name="Ada", last_name="Lovelace")
    course = create_course(courses_app, name="Money Course", price="199.99")
    created = enrol(client, "u1", course["id"])
    sandbox.set_faults(latency=2.0)
    pay(client, "u1", created["id"])  # warm-up is not the point; measure a second enrolment
    fake_users.add("u2", email="bob@example.com")
    second = enrol(client, "u2", course["id"])
    started = time.perf_counter()
    response = client.patch(
        "/enrolment/paid", json={"enrolment_id": second["id"]}, headers=user_headers("u2")
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert (response.get_json()["payment_status"], response.get_json()["invoice_status"]) == (
        "paid",
        "pending",
    )
    assert elapsed < 0.1, f"mark-paid waited {elapsed:.3f}s"

    def issued() -> dict | None:
        body = client.get(
            f"/enrolment/{created['id']}/details", headers=user_headers("u1")
        ).get_json()
        return body if body["invoice_status"] == "issued" else None

    body = wait_for(issued, timeout=15, what="the invoice")
    assert body["invoice"]["view_url"].startswith(sandbox.url)
    [invoice] = [i for i in sandbox.invoices() if i["oid"] == f"enrolment-{created['id']}"]
    # Money round-trips exactly.
    assert body["price"] == "199.99"
    assert invoice["positions"][0]["total_price_gross"] == "199.99"
    assert invoice["price_gross"] == "199.99"
    assert (invoice["buyer_name"], invoice["buyer_email"]) == ("Ada Lovelace", "ada@example.com")
    assert invoice["seller_name"] == "Course Platform Test"
    assert body["invoice"] == {
        "id": invoice["id"],
        "number": invoice["number"],
        "view_url": invoice["view_url"],
    }

    def payment_mail():
        return [
            m
            for m in smtp_sink.messages
            if m["Subject"].startswith("Payment received") and m["To"] == "ada@example.com"
        ]

    [mail] = wait_for(payment_mail, timeout=10, what="the payment mail")
    assert invoice["view_url"] in message_text(mail)
    assert "199.99 PLN" in message_text(mail)


def test_two_hundred_paid_enrolments_under_faults_get_exactly_two_hundred_invoices(
    running_app: Flask, fake_users: FakeUsers, sandbox: Sandbox
):
    client = running_app.test_client()
    sandbox.set_faults(error_rate=0.5, timeout_rate=0.15, hang_seconds=0.8, drop_rate=0.05)
    ids = paid_enrolments(running_app, client, fake_users, 200)
    wait_for(
        lambda: invoice_statuses(running_app).get("issued") == 200,
        timeout=60,
        what="200 invoices",
        interval=0.25,
    )
    stats = sandbox.stats()
    assert stats["errors"] > 0
    assert stats["late_answers"] > 0
    assert stats["oid_conflicts"] > 0
    assert stats["invoices"] == 200
    assert_exactly_one_invoice_each(running_app, sandbox, ids)


def test_refused_invoice_is_failed_until_an_admin_retries(
    running_app: Flask, fake_users: FakeUsers, sandbox: Sandbox, courses_app
):
    client = running_app.test_client()
    fake_users.add("nameless", username="", first_name="", last_name="")
    course = create_course(courses_app)
    created = enrol(client, "nameless", course["id"])
    pay(client, "nameless", created["id"])

    def failed() -> dict | None:
        body = client.get(f"/enrolment/{created['id']}", headers=ADMIN).get_json()
        return body if body["invoice_status"] == "failed" else None

    body = wait_for(failed, timeout=10, what="the failed invoice")
    assert "buyer_name" in body["invoice_error"]
    assert body["invoice"] is None
    not_failed = client.post(f"/enrolment/{created['id']}/invoice/retry", headers=user_headers("x"))
    assert not_failed.status_code == 403
    with database(running_app).transaction() as session:
        session.execute(
            update(EnrolmentRecord)
            .where(EnrolmentRecord.id == created["id"])
            .values(buyer_name="Fixed Name")
        )
    retried = client.post(f"/enrolment/{created['id']}/invoice/retry", headers=ADMIN)
    assert (retried.status_code, retried.get_json()["invoice_status"]) == (200, "pending")
    wait_for(
        lambda: client.get(f"/enrolment/{created['id']}", headers=ADMIN).get_json()["invoice"],
        timeout=10,
        what="the retried invoice",
    )
    again = client.post(f"/enrolment/{created['id']}/invoice/retry", headers=ADMIN)
    assert (again.status_code, again.get_json()["error"]) == (409, "invoice_not_failed")
    assert len(sandbox.invoices()) == 1


def test_killing_the_worker_process_mid_run_changes_nothing(
    enrolments_app: Flask,
    enrolments_client: FlaskClient,
    enrolments_env: EnrolmentsEnv,
    fake_users: FakeUsers,
    sandbox: Sandbox,
    tmp_path: Path,
):
    ids = paid_enrolments(enrolments_app, enrolments_client, fake_users, 120)
    sandbox.set_faults(latency=0.05, error_rate=0.3, timeout_rate=0.1, hang_seconds=0.8)
    env = enrolments_env.worker_env()
    first = start_worker_process(env, tmp_path / "worker-1.log")
    try:
        wait_for(lambda: len(sandbox.invoices()) >= 30, timeout=30, what="some invoices")
        first.kill()  # SIGKILL, mid-run: calls in flight, rows leased
    finally:
        first.stop()
    issued_before = invoice_statuses(enrolments_app).get("issued", 0)
    assert issued_before < 120, "the kill came too late to prove anything"
    second = start_worker_process(env, tmp_path / "worker-2.log")
    try:
        wait_for(
            lambda: invoice_statuses(enrolments_app).get("issued") == 120,
            timeout=60,
            what="all invoices after the restart",
            interval=0.25,
        )
    finally:
        second.process.terminate()
        assert second.process.wait(30) == 0, "SIGTERM stops the worker cleanly"
        second.stop()
    assert_exactly_one_invoice_each(enrolments_app, sandbox, ids)


def test_two_worker_processes_never_take_the_same_row(
    enrolments_app: Flask,
    enrolments_client: FlaskClient,
    enrolments_env: EnrolmentsEnv,
    fake_users: FakeUsers,
    sandbox: Sandbox,
    tmp_path: Path,
):
    ids = paid_enrolments(enrolments_app, enrolments_client, fake_users, 100)
    sandbox.set_faults(latency=0.25)
    env = enrolments_env.worker_env(INVOICE_WORKERS="4", INVOICE_LEASE_SECONDS="30")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    processes = [spawn_worker_process(env, log) for log in logs]
    try:
        wait_for(
            lambda: invoice_statuses(enrolments_app).get("issued") == 100,
            timeout=60,
            what="all invoices",
            interval=0.25,
        )
    finally:
        for process in processes:
            process.stop()
    stats = sandbox.stats()
    # Every row was sent exactly once: no process ever claimed a row another held.
    assert (stats["create_calls"], stats["oid_conflicts"], stats["invoices"]) == (100, 0, 100)
    issued_by = [log.read_text().count('"invoice_issued"') for log in logs]
    assert sum(issued_by) == 100
    assert all(issued_by), f"both processes worked: {issued_by}"
    assert_exactly_one_invoice_each(enrolments_app, sandbox, ids)


def test_daily_expiry_runs_once_when_four_workers_start(
    enrolments_app: Flask,
    enrolments_client: FlaskClient,
    enrolments_env: EnrolmentsEnv,
    fake_users: FakeUsers,
    courses_app: Flask,
    tmp_path: Path,
):
    course = create_course(courses_app)
    ids = []
    for user in ("e1", "e2", "e3"):
        fake_users.add(user)
        ids.append(enrol(enrolments_client, user, course["id"])["id"])
    reschedule(
        courses_app,
        course["id"],
        datetime(2019, 12, 1, tzinfo=UTC),
        datetime(2020, 1, 1, tzinfo=UTC),
    )
    env = enrolments_env.worker_env(EXPIRY_CHECK_INTERVAL="0.2", INVOICE_WORKERS="1")
    logs = [tmp_path / f"w{n}.log" for n in range(4)]
    processes = [spawn_worker_process(env, log) for log in logs]
    try:
        wait_for(
            lambda: all(b"invoice_worker_started" in log.read_bytes() for log in logs),
            timeout=30,
            what="four workers",
        )
        time.sleep(1.5)  # several expiry checks in every process
    finally:
        for process in processes:
            process.stop()
    runs = sum(log.read_text().count('"daily_expiry_ran"') for log in logs)
    assert runs == 1
    with database(enrolments_app).transaction() as session:
        assert session.scalar(select(func.count()).select_from(JobRunRecord)) == 1
        statuses = session.scalars(
            select(EnrolmentRecord.status).where(EnrolmentRecord.id.in_(ids))
        ).all()
    assert list(statuses) == ["expired"] * 3


@gives_up_after_three_quick_attempts
def test_an_unexpected_error_counts_as_an_attempt_and_ends_failed_for_an_admin(
    manual_app: Flask,
    enrolments_client: FlaskClient,
    fake_users: FakeUsers,
    sandbox: Sandbox,
    courses_app: Flask,
    monkeypatch: pytest.MonkeyPatch,
):
    enrolment_id = paid_enrolment(enrolments_client, fake_users, courses_app)
    fakturownia = manual_app.extensions["container"].fakturownia()

    def unparseable_answer(_request: Any) -> Any:
        raise ValueError("invoice id 'secret-internal-detail' is not a number")

    monkeypatch.setattr(fakturownia, "create_invoice", unparseable_answer)
    assert [process_next(manual_app) for _ in range(3)] == ["retry", "retry", "failed"]
    view = admin_view(enrolments_client, enrolment_id)
    assert view["invoice_status"] == "failed"
    assert "unexpected ValueError" in view["invoice_error"]
    assert "secret-internal-detail" not in view["invoice_error"]
    # Once the cause is fixed, the admin's retry issues exactly one invoice.
    monkeypatch.undo()
    retried = enrolments_client.post(f"/enrolment/{enrolment_id}/invoice/retry", headers=ADMIN)
    assert retried.status_code == 200, retried.get_json()
    assert process_next(manual_app) == "issued"
    assert len(sandbox.invoices()) == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [("1.5", 1.5), ("inf", None), ("nan", None), ("-3", None), ("soon", None), ("1e12", 3600.0)],
)
def test_retry_after_is_honoured_only_when_finite_and_bounded(header: str, expected: Any):
    response = httpx.Response(429, headers={"Retry-After": header})
    assert _retry_after(response) == expected
