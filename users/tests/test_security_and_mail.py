"""NoSQL operator payloads, mail through the real SMTP sink, the outbox, indexes."""

from __future__ import annotations

import threading
import time
from datetime import UTC

import pytest

from common.mail import OutgoingMail
from devtools.helpers import internal_headers
from devtools.smtp_sink import SmtpSink, message_text
from users.adapters.outbox import MongoOutbox
from users.security import Secrets
from users.testing import (
    ANON,
    PASSWORD,
    TEST_TOTP_KEY,
    Clock,
    activation_code,
    create_active_user,
    reset_token,
    user_body,
)

SEALER = Secrets(TEST_TOTP_KEY)

OP = {"$ne": None}
USER_ID = "a" * 24
ME = internal_headers(USER_ID, "admin")

# Every endpoint that takes input, with an operator where a string belongs.
OPERATOR_PAYLOADS = [
    *[("post", "/users", {"json": user_body(**{field: OP})}) for field in user_body()],
    ("post", "/users", {"json": user_body(role={"$in": ["admin"]})}),
    ("patch", "/users/activation", {"json": {"code": OP}}),
    ("patch", "/users/activation", {"json": {"code": "123456", "identifier": OP}}),
    ("get", "/users/activation/resend", {"query_string": {"identifier[$ne]": "x"}}),
    ("post", "/users/activation/resend", {"query_string": {"identifier[$ne]": "x"}}),
    ("post", "/users/activation/resend", {"json": {"identifier": OP}}),
    ("post", "/users/password/forgot", {"json": {"identifier": {"$gt": ""}}}),
    ("post", "/users/password/reset", {"json": {"token": OP, "new_password": PASSWORD}}),
    ("post", "/users/password/reset", {"json": {"token": "x" * 43, "new_password": OP}}),
    ("patch", "/users/me", {"json": {"first_name": OP}}),
    ("patch", "/users/me", {"json": {"gender": {"$set": {"role": "admin"}}}}),
    ("post", "/users/me/password", {"json": {"current_password": OP, "new_password": PASSWORD}}),
    ("post", "/users/me/password", {"json": {"current_password": PASSWORD, "new_password": OP}}),
    ("patch", "/users/mfa/enable", {"json": {"password": OP}}),
    ("post", "/users/mfa/confirm", {"json": {"code": OP}}),
    ("patch", "/users/mfa/disable", {"json": {"password": OP, "code": "123456"}}),
    ("patch", "/users/mfa/disable", {"json": {"password": PASSWORD, "code": OP}}),
    ("get", "/users/id", {"query_string": {"user_id[$ne]": "x"}}),
    ("delete", "/users/id", {"query_string": {"user_id[$ne]": "x"}}),
    ("get", "/users/identifier", {"query_string": {"identifier[$regex]": ".*"}}),
    ("delete", "/users/identifier", {"query_string": {"identifier[$regex]": ".*"}}),
    ("get", "/users", {"query_string": {"search[$regex]": ".*"}}),
    ("patch", f"/users/{USER_ID}/role", {"json": {"role": OP}}),
    ("post", "/internal/credentials/verify", {"json": {"identifier": OP, "password": OP}}),
    ("post", "/internal/credentials/verify", {"json": {"identifier": "root", "password": OP}}),
    ("post", "/internal/credentials/verify", {"json": {"identifier": OP, "password": PASSWORD}}),
    ("post", "/internal/mfa/verify", {"json": {"user_id": OP, "code": "123456"}}),
    ("post", "/internal/mfa/verify", {"json": {"user_id": USER_ID, "code": OP}}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), OPERATOR_PAYLOADS)
def test_nosql_operator_payloads_are_400(users_app, users_client, method, path, kwargs):
    create_active_user(users_app, username="root", email="root@example.com", password=PASSWORD)
    response = getattr(users_client, method)(path, headers=ME, **kwargs)
    assert response.status_code == 400, (path, response.get_json())
    assert response.get_json()["error"] == "validation_error"


@pytest.mark.parametrize("body", [[], [{"identifier": "root"}], "root", 1])
def test_non_object_bodies_are_400(users_client, body):
    response = users_client.post("/users/password/forgot", json=body, headers=ANON)
    assert response.status_code == 400


# -- mail ---------------------------------------------------------------------------------------


def wait_for_mail_to(sink: SmtpSink, to: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in sink.messages:
            if message["To"] == to:
                return message
        time.sleep(0.02)
    raise AssertionError(f"no mail to {to} within {timeout}s")


def test_activation_mail_reaches_the_smtp_sink_after_the_response(
    users_app, users_client, smtp_sink
):
    smtp_sink.refusing = True  # the request must not depend on SMTP at all
    started = time.perf_counter()
    body = user_body(first_name="<b>Jo</b>", email="mail@example.com", username="mailer")
    response = users_client.post("/users", json=body, headers=ANON)
    assert response.status_code == 201
    assert time.perf_counter() - started < 2
    assert [m for m in smtp_sink.messages if m["To"] == "mail@example.com"] == []
    smtp_sink.refusing = False
    message = wait_for_mail_to(smtp_sink, "mail@example.com")
    assert message["Subject"] == "Your activation code"
    assert "activation code is" in message_text(message)
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "&lt;b&gt;Jo&lt;/b&gt;" in html
    assert "<b>Jo</b>" not in html


def test_mail_survives_an_smtp_outage(users_app, users_client, smtp_sink):
    smtp_sink.refusing = True
    create_active_user(users_app, username="outage", email="outage@example.com", password=PASSWORD)
    forgot = {"identifier": "outage@example.com"}
    assert users_client.post("/users/password/forgot", json=forgot, headers=ANON).status_code == 202
    database = users_app.extensions["container"].database()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        item = database["outbox"].find_one({"mail.to": "outage@example.com"})
        if item is not None and item["attempts"] >= 2:
            break
        time.sleep(0.02)
    assert item["attempts"] >= 2
    assert item["status"] == "pending"
    assert [m for m in smtp_sink.messages if m["To"] == "outage@example.com"] == []
    smtp_sink.refusing = False
    message = wait_for_mail_to(smtp_sink, "outage@example.com")
    assert "reset-password?token=" in message_text(message)
    time.sleep(0.2)
    assert len([m for m in smtp_sink.messages if m["To"] == "outage@example.com"]) == 1
    assert database["outbox"].find_one({"mail.to": "outage@example.com"})["status"] == "sent"


# -- outbox and indexes -------------------------------------------------------------------------


@pytest.fixture
def scratch_db(users_app):
    client = users_app.extensions["container"].mongo_client()
    database = client["users_outbox_test"]
    database["outbox"].delete_many({})
    yield database
    database["outbox"].delete_many({})


def test_two_relays_never_claim_one_mail_twice(scratch_db):
    first, second = MongoOutbox(scratch_db, sealer=SEALER), MongoOutbox(scratch_db, sealer=SEALER)
    for i in range(60):
        first.add(OutgoingMail(to=f"u{i}@example.com", subject="s", text="t"))
    claimed: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)

    def drain(store: MongoOutbox, into: list[str]) -> None:
        barrier.wait()
        while True:
            items = store.claim_due(3)
            if not items:
                return
            into.extend(item.payload.to for item in items)

    threads = [
        threading.Thread(target=drain, args=(store, into))
        for store, into in zip((first, second), claimed, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = claimed[0] + claimed[1]
    assert len(everything) == 60
    assert len(set(everything)) == 60


def test_a_lease_returns_a_crashed_claim_and_retries_wait(scratch_db):
    clock = Clock()
    store = MongoOutbox(scratch_db, sealer=SEALER, lease_seconds=60, clock=clock)
    store.add(OutgoingMail(to="x@example.com", subject="s", text="t"))
    [item] = store.claim_due(10)
    assert store.claim_due(10) == []  # leased
    clock.advance(61)
    [again] = store.claim_due(10)  # the first claimer "crashed"
    assert (again.id, again.attempts) == (item.id, 2)
    store.mark_retry(again.id, 30, "SMTP down")
    assert store.claim_due(10) == []
    clock.advance(31)
    [third] = store.claim_due(10)
    store.mark_done(third.id)
    clock.advance(3600)
    assert store.claim_due(10) == []


def test_indexes_are_created_idempotently(users_app):
    repository = users_app.extensions["container"].user_repository()
    repository.ensure_indexes()
    repository.ensure_indexes()
    info = repository.users.index_information()
    assert info["email_unique"]["unique"]
    assert info["username_key_unique"]["unique"]


def test_the_outbox_holds_no_usable_code_or_reset_link(users_app, users_client, smtp_sink):
    # The users collection keeps codes and tokens only as keyed hashes; the mail that
    # carries them must not undo that for anyone who can read the database.
    body = user_body(email="sealed@example.com", username="sealed")
    assert users_client.post("/users", json=body, headers=ANON).status_code == 201
    code = activation_code(users_app, "sealed@example.com")
    create_active_user(
        users_app, username="resetme", email="resetme@example.com", password=PASSWORD
    )
    forgot = {"identifier": "resetme@example.com"}
    assert users_client.post("/users/password/forgot", json=forgot, headers=ANON).status_code == 202
    token = reset_token(users_app, "resetme@example.com")
    raw = str(list(users_app.extensions["container"].database()["outbox"].find()))
    assert code not in raw
    assert token not in raw
    # ...and the relay still delivers them in clear to the mailbox.
    delivered = wait_for_mail_to(smtp_sink, "resetme@example.com")
    assert token in message_text(delivered)


def test_finished_items_expire_after_the_retention_period_and_pending_ones_never(scratch_db):
    clock = Clock()
    store = MongoOutbox(scratch_db, sealer=SEALER, retention_days=30, clock=clock)
    store.ensure_indexes()
    assert scratch_db["outbox"].index_information()["outbox_purge"]["expireAfterSeconds"] == 0
    for to in ("sent@example.com", "failed@example.com", "pending@example.com"):
        store.add(OutgoingMail(to=to, subject="s", text="t"))
    sent, failed = store.claim_due(2)
    store.mark_done(sent.id)
    store.mark_failed(failed.id, "refused")
    purge = {doc["mail"]["to"]: doc.get("purge_at") for doc in scratch_db["outbox"].find()}
    assert purge["pending@example.com"] is None
    for to in ("sent@example.com", "failed@example.com"):
        stored = purge[to].replace(tzinfo=UTC) if purge[to].tzinfo is None else purge[to]
        assert abs(stored.timestamp() - (clock.now + 30 * 86400)) < 1


def test_a_body_sealed_with_another_key_fails_alone(scratch_db):
    other = MongoOutbox(scratch_db, sealer=Secrets("another-key-0123456789abcdefghijklmnop"))
    other.add(OutgoingMail(to="lost@example.com", subject="s", text="t"))
    store = MongoOutbox(scratch_db, sealer=SEALER)
    store.add(OutgoingMail(to="fine@example.com", subject="s", text="t"))
    [claimed] = store.claim_due(5)
    assert claimed.payload.to == "fine@example.com"
    lost = scratch_db["outbox"].find_one({"mail.to": "lost@example.com"})
    assert (lost["status"], lost["last_error"]) == (
        "failed",
        "sealed body unreadable: was the key changed?",
    )
