"""The Fakturownia stand-in on a real socket, with the admin calls tests need."""

from __future__ import annotations

from typing import Any

from flask import Flask

from devtools.live import LiveServer
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


def start_sandbox(token: str = SANDBOX_TOKEN) -> Sandbox:
    app = create_app(SandboxSettings(api_token=token))
    return Sandbox(app, LiveServer(app).start(), token)
