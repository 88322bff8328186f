"""Activation codes, resend, forgot/reset: single use, expiry, neutral answers."""

from __future__ import annotations

import threading

import pytest

from devtools.helpers import internal_headers
from users.domain import InvalidActivationCode
from users.service import UserService
from users.testing import (
    ANON,
    PASSWORD,
    TEST_FRONTEND_URL,
    activation_code,
    create_active_user,
    outbox,
    register,
    reset_token,
    settle_jobs,
    user_service,
)

EMAIL = "john@example.com"


def activate(client, code, identifier=None):
    body = {"code": code} if identifier is None else {"code": code, "identifier": identifier}
    return client.patch("/users/activation", json=body, headers=ANON)


def login(client, password=PASSWORD, identifier=EMAIL):
    body = {"identifier": identifier, "password": password}
    return client.post("/internal/credentials/verify", json=body, headers=ANON)


def test_activation_code_activates_once(users_app, users_client):
    register(users_client)
    code = activation_code(users_app, EMAIL)
    assert login(users_client).status_code == 401
    response = activate(users_client, code)
    assert response.status_code == 200
    assert response.get_json()["is_active"] is True
    assert login(users_client).status_code == 200
    again = activate(users_client, code)
    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_activation_code"


def test_activation_code_with_identifier(users_app, users_client):
    register(users_client)
    code = activation_code(users_app, EMAIL)
    assert activate(users_client, code, "JohnDoe").status_code == 200


def test_codes_are_stored_hashed(users_app, users_client):
    register(users_client)
    code = activation_code(users_app, EMAIL)
    stored = users_app.extensions["container"].database()["users"].find_one({"email": EMAIL})
    assert code not in str(stored)
    assert PASSWORD not in str(stored)
    assert stored["password_hash"].startswith("$argon2id$")


def test_five_wrong_codes_kill_the_code(users_app, users_client):
    register(users_client)
    code = activation_code(users_app, EMAIL)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert activate(users_client, wrong, EMAIL).status_code == 400
    dead = activate(users_client, code, EMAIL)
    assert dead.status_code == 400
    assert activate(users_client, code).status_code == 400


def test_four_wrong_codes_still_leave_the_right_one_usable(users_app, users_client):
    register(users_client)
    code = activation_code(users_app, EMAIL)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(4):
        assert activate(users_client, wrong, EMAIL).status_code == 400
    assert activate(users_client, code, EMAIL).status_code == 200


def stored_user(app, email=EMAIL):
    return app.extensions["container"].database()["users"].find_one({"email": email})


def wrong_code(code):
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_attempts_stop_counting_at_the_limit_and_the_right_code_stays_refused(
    users_app, users_client
):
    register(users_client)
    code = activation_code(users_app, EMAIL)
    for _ in range(5):
        assert activate(users_client, wrong_code(code), EMAIL).status_code == 400
    sixth = activate(users_client, code, "johndoe")
    assert sixth.status_code == 400
    assert sixth.get_json()["error"] == "invalid_activation_code"
    assert stored_user(users_app)["activation"]["attempts"] == 5
    assert stored_user(users_app)["is_active"] is False


def test_parallel_wrong_guesses_use_up_exactly_the_attempt_limit(users_app, users_client):
    """Each guess is counted before it is judged, so 20 simultaneous guesses cannot all
    be judged while the counter is still below the limit."""
    register(users_client)
    code = activation_code(users_app, EMAIL)
    service = user_service(users_app)
    guesses = 20
    barrier = threading.Barrier(guesses)
    refused: list[bool] = []

    def guess() -> None:
        barrier.wait()
        try:
            service.activate(wrong_code(code), EMAIL)
        except InvalidActivationCode:
            refused.append(True)

    threads = [threading.Thread(target=guess) for _ in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(refused) == guesses
    assert stored_user(users_app)["activation"]["attempts"] == 5
    assert activate(users_client, code, EMAIL).status_code == 400
    assert activate(users_client, code).status_code == 400
    assert stored_user(users_app)["is_active"] is False


def test_a_wrong_guess_counted_before_a_concurrent_right_one_does_not_void_it(
    users_app, users_client, monkeypatch
):
    register(users_client)
    code = activation_code(users_app, EMAIL)
    service = user_service(users_app)
    for _ in range(3):
        with pytest.raises(InvalidActivationCode):
            service.activate(wrong_code(code), EMAIL)
    repository = service.repository
    claim = repository.claim_activation_attempt
    concurrent: list[dict] = []

    def claim_then_let_the_right_guess_claim_too(*args, **kwargs):
        mine = claim(*args, **kwargs)  # the wrong guess: attempt 4
        concurrent.append(claim(*args, **kwargs))  # the right one, meanwhile: attempt 5
        return mine

    monkeypatch.setattr(
        repository, "claim_activation_attempt", claim_then_let_the_right_guess_claim_too
    )
    with pytest.raises(InvalidActivationCode):
        service.activate(wrong_code(code), EMAIL)
    monkeypatch.undo()
    [right] = concurrent
    activated = repository.activate_claimed(
        right["_id"], service.secrets.digest(code), now_ms=service.now_ms(), max_attempts=5
    )
    assert activated is not None
    assert activated["is_active"] is True


def test_activation_code_expires(users_app, users_client, users_clock):
    register(users_client)
    code = activation_code(users_app, EMAIL)
    users_clock.advance(30 * 60 + 1)
    response = activate(users_client, code)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_activation_code"


@pytest.mark.parametrize("code", ["１２３４５６", "12345", "1234567", "abcdef", 123456, None])
def test_malformed_activation_codes_are_400(users_client, code):
    response = users_client.patch("/users/activation", json={"code": code}, headers=ANON)
    assert response.status_code == 400
    assert response.get_json()["error"] == "validation_error"


def test_unknown_expired_and_used_codes_get_one_neutral_answer(users_app, users_client):
    unknown = activate(users_client, "000000").get_json()
    used_user = register(users_client)
    code = activation_code(users_app, EMAIL)
    activate(users_client, code)
    used = activate(users_client, code).get_json()
    assert {k: v for k, v in unknown.items() if k != "request_id"} == {
        k: v for k, v in used.items() if k != "request_id"
    }
    assert used_user["id"] not in str(used)


def test_resend_answers_are_byte_identical(users_app, users_client, users_clock):
    register(users_client)
    create_active_user(users_app, username="active", email="active@example.com", password=PASSWORD)
    users_clock.advance(61)
    bodies = set()
    for identifier in (EMAIL, "johndoe", "active@example.com", "nobody@example.com", "ghost"):
        for method in (users_client.get, users_client.post):
            response = method(
                "/users/activation/resend", query_string={"identifier": identifier}, headers=ANON
            )
            assert response.status_code == 202
            assert response.mimetype == "application/json"
            bodies.add(response.data)
    posted = users_client.post(
        "/users/activation/resend", json={"identifier": "ghost"}, headers=ANON
    )
    bodies.add(posted.data)
    assert len(bodies) == 1
    assert b"johndoe" not in bodies.pop()
    assert outbox(users_app, "active@example.com") == []
    assert outbox(users_app, "nobody@example.com") == []


def test_resend_issues_a_new_code_at_most_once_a_minute(users_app, users_client, users_clock):
    register(users_client)
    first = activation_code(users_app, EMAIL)
    resend = {"identifier": EMAIL}
    users_client.get("/users/activation/resend", query_string=resend, headers=ANON)
    assert len(outbox(users_app, EMAIL)) == 1  # within the first minute: nothing new
    users_clock.advance(61)
    users_client.get("/users/activation/resend", query_string=resend, headers=ANON)
    users_client.post("/users/activation/resend", query_string=resend, headers=ANON)
    assert len(outbox(users_app, EMAIL)) == 2
    second = activation_code(users_app, EMAIL)
    if second != first:
        assert activate(users_client, first).status_code == 400  # the old code died
    assert activate(users_client, second).status_code == 200


def test_forgot_answers_are_byte_identical(users_app, users_client):
    create_active_user(users_app, username="john", email=EMAIL, password=PASSWORD)
    register(users_client, username="pending", email="pending@example.com")
    bodies = {
        users_client.post(
            "/users/password/forgot", json={"identifier": identifier}, headers=ANON
        ).data
        for identifier in (EMAIL, "john", "pending@example.com", "nobody@example.com", "ghost")
    }
    assert len(bodies) == 1
    # By email, then by username within the same minute: throttled, yet the same answer.
    assert len(outbox(users_app, EMAIL)) == 1
    assert outbox(users_app, "nobody@example.com") == []
    assert len(outbox(users_app, "pending@example.com")) == 1  # only its activation mail


def test_reset_link_comes_from_configuration_not_the_host_header(users_app, users_client):
    create_active_user(users_app, username="john", email=EMAIL, password=PASSWORD)
    users_client.post(
        "/users/password/forgot",
        json={"identifier": EMAIL},
        headers={**ANON, "Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    mail = outbox(users_app, EMAIL)[-1]
    assert f"{TEST_FRONTEND_URL}/reset-password?token=" in mail["text"]
    assert "evil" not in mail["text"] + mail["html"]
    token = reset_token(users_app, EMAIL)
    assert len(token) >= 43  # 256 bits, url-safe base64
    stored = users_app.extensions["container"].database()["users"].find_one({"email": EMAIL})
    assert token not in str(stored)


def test_reset_token_works_once_and_bumps_tokens_valid_after(users_app, users_client, users_clock):
    user = create_active_user(users_app, username="john", email=EMAIL, password=PASSWORD)
    users_client.post("/users/password/forgot", json={"identifier": EMAIL}, headers=ANON)
    token = reset_token(users_app, EMAIL)
    users_clock.advance(5)
    new = "another long passphrase"
    body = {"token": token, "new_password": new}
    response = users_client.post("/users/password/reset", json=body, headers=ANON)
    assert response.status_code == 200
    assert response.headers["X-Sessions-Invalidated"] == user["id"]
    internal = users_client.get(f"/internal/users/{user['id']}", headers=ANON).get_json()
    assert internal["tokens_valid_after"] == int(users_clock.now * 1000)
    assert login(users_client, new).status_code == 200
    assert login(users_client, PASSWORD).status_code == 401
    again = users_client.post(
        "/users/password/reset",
        json={"token": token, "new_password": "yet another passphrase"},
        headers=ANON,
    )
    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_reset_token"


def test_reset_token_expires(users_app, users_client, users_clock):
    create_active_user(users_app, username="john", email=EMAIL, password=PASSWORD)
    users_client.post("/users/password/forgot", json={"identifier": EMAIL}, headers=ANON)
    token = reset_token(users_app, EMAIL)
    users_clock.advance(30 * 60 + 1)
    body = {"token": token, "new_password": "another long passphrase"}
    assert users_client.post("/users/password/reset", json=body, headers=ANON).status_code == 400
    assert login(users_client).status_code == 200


def test_a_newer_reset_token_supersedes_the_older_one(users_app, users_client, users_clock):
    create_active_user(users_app, username="john", email=EMAIL, password=PASSWORD)
    users_client.post("/users/password/forgot", json={"identifier": EMAIL}, headers=ANON)
    old = reset_token(users_app, EMAIL)
    users_clock.advance(61)
    users_client.post("/users/password/forgot", json={"identifier": "JOHN"}, headers=ANON)
    new = reset_token(users_app, EMAIL)
    assert old != new
    body = {"token": old, "new_password": "another long passphrase"}
    assert users_client.post("/users/password/reset", json=body, headers=ANON).status_code == 400
    body["token"] = new
    assert users_client.post("/users/password/reset", json=body, headers=ANON).status_code == 200


def forgot(client, identifier=EMAIL):
    response = client.post("/users/password/forgot", json={"identifier": identifier}, headers=ANON)
    assert response.status_code == 202
    return response.data


def test_forgot_issues_a_token_at_most_once_a_minute_per_account(
    users_app, users_client, users_clock
):
    create_active_user(users_app, username="john", email=EMAIL, password=PASSWORD)
    first_answer = forgot(users_client)
    first = reset_token(users_app, EMAIL)
    users_clock.advance(59)
    assert forgot(users_client, "JOHN") == first_answer
    settle_jobs(users_app)
    assert len(outbox(users_app, EMAIL)) == 1  # no second mail ...
    body = {"token": first, "new_password": "another long passphrase"}
    # ... and the link already sent still works.
    assert users_client.post("/users/password/reset", json=body, headers=ANON).status_code == 200


def test_a_reset_whose_mail_could_not_be_queued_does_not_throttle_the_retry(
    users_app, users_client, monkeypatch
):
    create_active_user(users_app, username="john", email=EMAIL, password=PASSWORD)
    service = user_service(users_app)

    def outbox_down(_mail):
        raise RuntimeError("outbox write failed")

    monkeypatch.setattr(service.outbox, "add", outbox_down)
    with pytest.raises(RuntimeError):
        service.issue_reset(EMAIL)
    monkeypatch.undo()
    assert "reset" not in stored_user(users_app)
    # The relay's retry of the job, within the minute, still sends a working link.
    service.issue_reset(EMAIL)
    token = reset_token(users_app, EMAIL)
    body = {"token": token, "new_password": "another long passphrase"}
    assert users_client.post("/users/password/reset", json=body, headers=ANON).status_code == 200


def test_forgot_issues_a_new_token_once_the_minute_has_passed(users_app, users_client, users_clock):
    create_active_user(users_app, username="john", email=EMAIL, password=PASSWORD)
    forgot(users_client)
    first = reset_token(users_app, EMAIL)
    users_clock.advance(30)
    forgot(users_client)
    assert len(outbox(users_app, EMAIL)) == 1
    users_clock.advance(31)
    forgot(users_client)
    assert len(outbox(users_app, EMAIL)) == 2
    second = reset_token(users_app, EMAIL)
    assert second != first
    body = {"token": second, "new_password": "another long passphrase"}
    assert users_client.post("/users/password/reset", json=body, headers=ANON).status_code == 200


def test_a_password_change_kills_outstanding_reset_tokens(users_app, users_client):
    user = create_active_user(users_app, username="john", email=EMAIL, password=PASSWORD)
    users_client.post("/users/password/forgot", json={"identifier": EMAIL}, headers=ANON)
    token = reset_token(users_app, EMAIL)
    change = {"current_password": PASSWORD, "new_password": "changed passphrase here"}
    users_client.post("/users/me/password", json=change, headers=internal_headers(user["id"]))
    body = {"token": token, "new_password": "another long passphrase"}
    assert users_client.post("/users/password/reset", json=body, headers=ANON).status_code == 400


def test_reset_applies_the_password_policy_and_keeps_the_token(users_app, users_client):
    create_active_user(users_app, username="john", email=EMAIL, password=PASSWORD)
    users_client.post("/users/password/forgot", json={"identifier": EMAIL}, headers=ANON)
    token = reset_token(users_app, EMAIL)
    for weak in ("short", "password1234", "john@example.com"):
        response = users_client.post(
            "/users/password/reset", json={"token": token, "new_password": weak}, headers=ANON
        )
        assert response.status_code == 400, weak
        assert response.get_json()["error"] == "weak_password"
    body = {"token": token, "new_password": "a perfectly fine passphrase"}
    assert users_client.post("/users/password/reset", json=body, headers=ANON).status_code == 200


def test_forgot_for_inactive_accounts_sends_nothing(users_app, users_client):
    register(users_client)
    users_client.post("/users/password/forgot", json={"identifier": EMAIL}, headers=ANON)
    assert [m["subject"] for m in outbox(users_app, EMAIL)] == ["Your activation code"]


class Recording:
    """Wraps a collaborator and records which of its methods were called."""

    def __init__(self, target: object) -> None:
        self.target = target
        self.calls: list[str] = []

    def __getattr__(self, name: str):
        attribute = getattr(self.target, name)
        if not callable(attribute):
            return attribute

        def recorded(*args, **kwargs):
            self.calls.append(name)
            return attribute(*args, **kwargs)

        return recorded


@pytest.mark.parametrize("request_kind", ["forgot_password", "resend_activation"])
def test_forgot_and_resend_do_the_same_storage_work_for_every_identifier(
    users_app, users_client, request_kind
):
    """Comparable timing by construction: whether the account exists, is active or
    not, the request path stores one job and touches no account."""
    create_active_user(users_app, username="john", email=EMAIL, password=PASSWORD)
    register(users_client, username="pending", email="pending@example.com")
    real = users_app.extensions["container"].user_service()
    repository, outbox_store = Recording(real.repository), Recording(real.outbox)
    service = UserService(
        repository=repository,  # type: ignore[arg-type]
        outbox=outbox_store,  # type: ignore[arg-type]
        passwords=real.passwords,
        secrets=real.secrets,
        policy=real.policy,
    )
    work = []
    for identifier in (EMAIL, "john", "pending@example.com", "nobody@example.com", "ghost"):
        repository.calls.clear()
        outbox_store.calls.clear()
        getattr(service, request_kind)(identifier)
        work.append((tuple(repository.calls), tuple(outbox_store.calls)))
    assert set(work) == {((), ("add_job",))}


def test_the_relay_turns_a_stored_reset_job_into_exactly_one_mail(users_app, users_client):
    create_active_user(users_app, username="john", email=EMAIL, password=PASSWORD)
    users_client.post("/users/password/forgot", json={"identifier": EMAIL}, headers=ANON)
    users_client.post("/users/password/forgot", json={"identifier": "ghost"}, headers=ANON)
    settle_jobs(users_app)
    jobs = users_app.extensions["container"].database()["outbox"].find({"job": {"$exists": 1}})
    assert sorted(job["status"] for job in jobs) == ["sent", "sent"]
    assert [mail["subject"] for mail in outbox(users_app, EMAIL)] == ["Reset your password"]


# -- activation without an identifier: one platform-wide budget for codes matching no one --


def code_only_budget(app, monkeypatch, attempts, window_seconds=600):
    import dataclasses

    service = user_service(app)
    policy = dataclasses.replace(
        service.policy,
        activation_code_only_max_attempts=attempts,
        activation_code_only_window_seconds=window_seconds,
    )
    monkeypatch.setattr(service, "policy", policy)


def unused_code(*codes):
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in codes)


def test_code_only_guesses_share_one_budget_and_then_wait_for_the_window(
    users_app, users_client, users_clock
):
    """A code that matches no pending account names none: it is a guess at every
    pending account at once, so such guesses are counted against all of them together.
    Without that, guesses spread over many addresses were limited by nothing. (The
    default budget: 50 per 10 minutes.)"""
    register(users_client)
    register(users_client, username="janedoe", email="jane@example.com")
    john, jane = activation_code(users_app, EMAIL), activation_code(users_app, "jane@example.com")
    wrong = unused_code(john, jane)
    for _ in range(50):
        assert activate(users_client, wrong).status_code == 400
    refused = activate(users_client, john)  # the budget is spent: refused unjudged
    assert (refused.status_code, refused.get_json()["error"]) == (400, "invalid_activation_code")
    assert stored_user(users_app)["is_active"] is False
    # An attempt that names its account is counted against that account only.
    assert activate(users_client, jane, "janedoe").status_code == 200
    users_clock.advance(600)
    assert activate(users_client, john).status_code == 200


def test_a_code_only_attempt_whose_code_matches_does_not_spend_the_budget(
    users_app, users_client, monkeypatch
):
    code_only_budget(users_app, monkeypatch, attempts=2)
    emails = [f"user{n}@example.com" for n in range(3)]
    for n, email in enumerate(emails):
        register(users_client, username=f"user{n}", email=email)
    codes = [activation_code(users_app, email) for email in emails]
    for code in codes:
        assert activate(users_client, code).status_code == 200
    guards = users_app.extensions["container"].database()["guards"]
    assert guards.find_one({"_id": "activation_code_only"})["attempts"] == 0


def test_parallel_code_only_guesses_are_judged_no_more_often_than_the_budget(
    users_app, users_client, monkeypatch
):
    code_only_budget(users_app, monkeypatch, attempts=5)
    register(users_client)
    code = activation_code(users_app, EMAIL)
    service = user_service(users_app)
    lookup = service.repository.find_by_activation_code
    judged: list[str] = []

    def counted_lookup(code_hash):
        judged.append(code_hash)
        return lookup(code_hash)

    monkeypatch.setattr(service.repository, "find_by_activation_code", counted_lookup)
    guesses = 20
    barrier = threading.Barrier(guesses)
    refused: list[bool] = []

    def guess(n: int) -> None:
        barrier.wait()
        try:
            service.activate(unused_code(code, *[f"{m:06d}" for m in range(n)]))
        except InvalidActivationCode:
            refused.append(True)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(refused) == guesses
    assert len(judged) == 5
    assert activate(users_client, code, EMAIL).status_code == 200
