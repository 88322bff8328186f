"""User journeys through nginx's port only: real gunicorn processes, MariaDB,
Redis, the SMTP sink and the Fakturownia stand-in."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pyotp
import pytest

from devtools.launcher import Platform

from .conftest import ADMIN, Mailbox

pytestmark = pytest.mark.e2e
PASSWORD = "a long and unusual passphrase 42"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register_and_activate(
    api: httpx.Client, mailbox: Mailbox, password: str = PASSWORD
) -> dict[str, Any]:
    name = f"user{uuid.uuid4().hex[:10]}"
    email = f"{name}@journey.example.org"
    created = api.post(
        "/api/users",
        json={
            "username": name,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": email,
            "password": password,
            "password_confirmation": password,
            "gender": "female",
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["is_active"] is False
    code = mailbox.wait_for(email, r"\b(\d{6})\b").group(1)
    activated = api.patch("/api/users/activation", json={"code": code, "identifier": email})
    assert activated.status_code == 200, activated.text
    assert activated.json()["is_active"] is True
    return {"username": name, "email": email, "password": password, "id": created.json()["id"]}


def login(api: httpx.Client, identifier: str, password: str) -> httpx.Response:
    return api.post("/api/auth/login", json={"identifier": identifier, "password": password})


def access_token(api: httpx.Client, identifier: str, password: str) -> str:
    response = login(api, identifier, password)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def csrf_header(api: httpx.Client) -> dict[str, str]:
    token = next(c.value for c in api.cookies.jar if "csrf_refresh" in c.name)
    return {"X-CSRF-TOKEN": token or ""}


def test_register_activate_login_and_see_me(api: httpx.Client, mailbox: Mailbox):
    user = register_and_activate(api, mailbox)
    token = access_token(api, user["username"], user["password"])
    me = api.get("/api/users/me", headers=bearer(token))
    assert me.status_code == 200
    assert (me.json()["email"], me.json()["role"]) == (user["email"], "user")


def test_mfa_enrolment_then_two_step_login(api: httpx.Client, mailbox: Mailbox):
    user = register_and_activate(api, mailbox)
    token = access_token(api, user["email"], user["password"])
    enable = api.patch(
        "/api/users/mfa/enable", json={"password": user["password"]}, headers=bearer(token)
    )
    assert enable.status_code == 200, enable.text
    assert enable.json()["qr_code_base64"]
    totp = pyotp.parse_uri(enable.json()["provisioning_uri"])
    assert isinstance(totp, pyotp.TOTP)
    confirm = api.post("/api/users/mfa/confirm", json={"code": totp.now()}, headers=bearer(token))
    assert confirm.status_code == 200, confirm.text
    assert len(confirm.json()["recovery_codes"]) == 10

    password_step = login(api, user["email"], user["password"])
    assert password_step.status_code == 200
    assert password_step.json()["mfa_required"] is True
    assert "access_token" not in password_step.json()
    mfa_token = password_step.json()["mfa_token"]
    assert api.get("/api/users/me", headers=bearer(mfa_token)).status_code == 401
    # The confirmation used the current step; the next one is newer, so it is not a replay.
    next_code = totp.at(time.time() + 30)
    verified = api.post("/api/auth/mfa/verify", json={"mfa_token": mfa_token, "code": next_code})
    assert verified.status_code == 200, verified.text
    me = api.get("/api/users/me", headers=bearer(verified.json()["access_token"]))
    assert me.status_code == 200
    replay = api.post("/api/auth/mfa/verify", json={"mfa_token": mfa_token, "code": next_code})
    assert replay.status_code == 401


def test_refresh_rotation_and_reuse_kills_the_session(api: httpx.Client, mailbox: Mailbox):
    user = register_and_activate(api, mailbox)
    access_token(api, user["username"], user["password"])
    old_cookies = httpx.Cookies(api.cookies)
    refreshed = api.post("/api/auth/refresh", headers=csrf_header(api))
    assert refreshed.status_code == 200, refreshed.text
    new_cookies = httpx.Cookies(api.cookies)

    with httpx.Client(base_url=str(api.base_url), cookies=old_cookies) as thief:
        replay = thief.post("/api/auth/refresh", headers=csrf_header(thief))
        assert replay.status_code == 401
    with httpx.Client(base_url=str(api.base_url), cookies=new_cookies) as owner:
        assert owner.post("/api/auth/refresh", headers=csrf_header(owner)).status_code == 401


def newest_enrolment_once_invoiced(
    api: httpx.Client, token: dict[str, str], timeout: float = 20
) -> dict[str, Any]:
    """The caller's newest enrolment, polled until its invoice is issued."""
    deadline = time.monotonic() + timeout
    mine: dict[str, Any] = {}
    while time.monotonic() < deadline:
        mine = api.get("/api/enrolment/mine", headers=token).json()["enrolments"][0]
        if mine["invoice_status"] == "issued":
            return mine
        time.sleep(0.2)
    raise AssertionError(f"invoice not issued in {timeout} s: {mine}")


def admin_token(api: httpx.Client) -> str:
    return access_token(api, ADMIN["email"], ADMIN["password"])


def test_course_purchase_ends_with_one_exact_invoice(
    api: httpx.Client, mailbox: Mailbox, platform: Platform
):
    admin = bearer(admin_token(api))
    name = f"Journey {uuid.uuid4().hex[:8]}"
    course = api.post(
        "/api/course",
        headers=admin,
        json={
            "name": name,
            "price": "199.99",
            "max_participants": 5,
            "start_date": "2031-01-01T09:00:00Z",
            "end_date": "2031-02-01T09:00:00Z",
        },
    )
    assert course.status_code == 201, course.text

    user = register_and_activate(api, mailbox)
    token = bearer(access_token(api, user["email"], user["password"]))
    found = api.get("/api/course/", params={"search": name}).json()
    assert [c["id"] for c in found["courses"]] == [course.json()["id"]]
    enrolment = api.post("/api/enrolment", headers=token, json={"course_id": course.json()["id"]})
    assert enrolment.status_code == 201, enrolment.text
    paid = api.patch(
        "/api/enrolment/paid", headers=token, json={"enrolment_id": enrolment.json()["id"]}
    )
    assert paid.status_code == 200, paid.text
    assert (paid.json()["payment_status"], paid.json()["invoice_status"]) == ("paid", "pending")

    mine = newest_enrolment_once_invoiced(api, token)
    sandbox = f"http://127.0.0.1:{platform.config.ports.fakturownia}"
    invoices = [
        i
        for i in httpx.get(f"{sandbox}/__admin/invoices").json()
        if i["oid"] == f"enrolment-{mine['id']}"
    ]
    assert len(invoices) == 1
    assert invoices[0]["positions"][0]["total_price_gross"] in ("199.99", 199.99)
    view_url = mine["invoice"]["view_url"]
    assert mailbox.wait_for(user["email"], re.escape(view_url))


def test_admin_powers_and_user_limits(api: httpx.Client, mailbox: Mailbox):
    admin = bearer(admin_token(api))
    listing = api.get("/api/users", headers=admin, params={"per_page": 5})
    assert listing.status_code == 200
    assert listing.json()["total"] >= 1

    user = register_and_activate(api, mailbox)
    token = bearer(access_token(api, user["username"], user["password"]))
    # The admin moves a course into the past after the user enrolled, then expires.
    course = api.post(
        "/api/course",
        headers=admin,
        json={
            "name": f"Ending {uuid.uuid4().hex[:8]}",
            "price": "10.00",
            "start_date": "2031-01-01T09:00:00Z",
            "end_date": "2031-02-01T09:00:00Z",
        },
    ).json()
    enrolment = api.post("/api/enrolment", headers=token, json={"course_id": course["id"]}).json()
    moved = api.patch(
        f"/api/course/{course['id']}",
        headers=admin,
        json={"start_date": "2020-01-01T09:00:00Z", "end_date": "2020-02-01T09:00:00Z"},
    )
    assert moved.status_code == 200, moved.text
    expired = api.patch("/api/enrolment/expired", headers=admin)
    assert expired.status_code == 200, expired.text
    assert enrolment["id"] in expired.json()["enrolment_ids"]
    mine = api.get("/api/enrolment/mine", headers=token).json()["enrolments"]
    assert [(e["id"], e["status"]) for e in mine] == [(enrolment["id"], "expired")]

    assert api.get("/api/users", headers=token).status_code == 403
    assert api.patch("/api/enrolment/expired", headers=token).status_code == 403
    assert api.delete("/api/enrolment/1", headers=token).status_code == 403
    assert (
        api.get("/api/users/id", params={"user_id": user["id"]}, headers=token).status_code == 403
    )
    self_promotion = api.post(
        "/api/users",
        json={
            "username": "sneaky" + uuid.uuid4().hex[:6],
            "first_name": "S",
            "last_name": "N",
            "email": f"sneaky{uuid.uuid4().hex[:6]}@journey.example.org",
            "password": PASSWORD,
            "password_confirmation": PASSWORD,
            "gender": "other",
            "role": "admin",
        },
    )
    assert self_promotion.status_code in (400, 403)


def test_password_reset_by_mail_kills_old_tokens(api: httpx.Client, mailbox: Mailbox):
    user = register_and_activate(api, mailbox)
    old = bearer(access_token(api, user["email"], user["password"]))
    assert api.get("/api/users/me", headers=old).status_code == 200
    forgot = api.post("/api/users/password/forgot", json={"identifier": user["email"]})
    assert forgot.status_code == 202
    token = mailbox.wait_for(user["email"], r"reset-password\?token=([\w\-]+)").group(1)
    new_password = "another entirely new passphrase 77"
    reset = api.post(
        "/api/users/password/reset", json={"token": token, "new_password": new_password}
    )
    assert reset.status_code == 200, reset.text
    assert api.get("/api/users/me", headers=old).status_code == 401
    assert login(api, user["email"], user["password"]).status_code == 401
    fresh = bearer(access_token(api, user["email"], new_password))
    assert api.get("/api/users/me", headers=fresh).status_code == 200
