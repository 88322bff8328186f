"""pytest fixtures: the Fakturownia stand-in on a real socket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from common.testing.live import LiveServer
from fakturownia_sandbox.app import SandboxSettings, create_app

SANDBOX_TOKEN = "sandbox-api-token-0123456789abcdefghijklmn"


class Sandbox:
    """A running stand-in plus the admin calls tests need."""

    def __init__(self, app: Flask, server: LiveServer, token: str) -> None:
        self.app = app
        self.server = server
        self.token = token
        self._admin = app.test_client()

    @property
    def url(self) -> str:
        return self.server.url

    def set_faults(self, **faults: Any) -> None:
        response = self._admin.put("/__admin/faults", json=faults)
        assert response.status_code == 200, response.get_json()

    def reset(self) -> None:
        self._admin.post("/__admin/reset")

    def invoices(self) -> list[dict[str, Any]]:
        return self._admin.get("/__admin/invoices").get_json()

    def stats(self) -> dict[str, int]:
        return self._admin.get("/__admin/stats").get_json()

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def sandbox_session() -> Iterator[Sandbox]:
    app = create_app(SandboxSettings(api_token=SANDBOX_TOKEN))
    sandbox = Sandbox(app, LiveServer(app).start(), SANDBOX_TOKEN)
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sandbox(sandbox_session: Sandbox) -> Sandbox:
    """The session's stand-in with no invoices and no faults."""
    sandbox_session.reset()
    return sandbox_session
