"""schemathesis hooks of the contract suite, loaded by ``st run`` (``hooks`` in the
generated configuration) with the platform's URL in ``CONTRACT_BASE_URL``.

Registration: ``password_confirmation`` repeats ``password`` (the spec's description of
the field says so; no JSON Schema keyword can), so a schema-valid registration that
should succeed gets the same password twice. Only positive cases are touched: the ones
meant to be refused stay as generated.

The admin run (``CONTRACT_ADMIN_IDENTIFIER``, ``CONTRACT_ADMIN_PASSWORD`` set) logs the
bootstrap admin in through the API. The fuzzer logs itself out, revokes its sessions
and sends broken tokens on purpose, so any 401 makes schemathesis ask for the token
again (and replay the request). Logging in costs an argon2 hash, so the token is first
checked with ``GET /api/users/me``: only a token the gateway no longer takes (or no
longer an admin's) is replaced by a new login.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx
import schemathesis


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set (see tests/contract/test_schemathesis.py)")
    return value


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    operation = context.operation
    if (
        operation is not None
        and (operation.method.upper(), operation.path) == ("POST", "/api/users")
        and case.meta is not None
        and case.meta.generation.mode.is_positive
        and isinstance(case.body, dict)
        and "password" in case.body
    ):
        case.body["password_confirmation"] = case.body["password"]
    return case


class AdminLogin:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.token: str | None = None
        self.logins = 0
        self.http = httpx.Client(base_url=_env("CONTRACT_BASE_URL"), timeout=15)

    def get(self, case: Any, context: Any) -> str:
        with self.lock:
            if self.token is None or not self._alive(self.token):
                self.token = self._login()
            return self.token

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    def _alive(self, token: str) -> bool:
        me = self.http.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
        return me.status_code == 200 and me.json().get("role") == "admin"

    def _login(self) -> str:
        response = self.http.post(
            "/api/auth/login",
            json={
                "identifier": _env("CONTRACT_ADMIN_IDENTIFIER"),
                "password": _env("CONTRACT_ADMIN_PASSWORD"),
            },
        )
        if response.status_code != 200 or "access_token" not in response.json():
            raise RuntimeError(f"the admin cannot log in: {response.status_code} {response.text}")
        self.logins += 1
        return str(response.json()["access_token"])


if os.environ.get("CONTRACT_ADMIN_IDENTIFIER"):
    schemathesis.auth(retry_on=[401])(AdminLogin)
