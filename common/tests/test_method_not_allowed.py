"""An undeclared method is a 405 with Allow, with or without a route's trailing slash."""

from __future__ import annotations

from flask import Flask

from common.app import create_base_app
from common.settings import BaseServiceSettings


def _app() -> Flask:
    app = create_base_app(
        "probe", BaseServiceSettings(environment="development"), {}, require_internal_key=False
    )

    @app.route("/api/things/", methods=["GET", "POST"])
    def things() -> str:
        return "ok"

    @app.get("/api/things/<int:thing_id>")
    def thing(thing_id: int) -> str:
        return "ok"

    return app


def test_undeclared_method_on_a_slash_rule_reached_without_its_slash_is_a_405():
    client = _app().test_client()
    for path in ("/api/things", "/api/things/"):
        for method in ("PUT", "DELETE", "PATCH"):
            response = client.open(path, method=method)
            assert response.status_code == 405, (method, path)
            assert response.get_json()["error"] == "method_not_allowed"
            assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert client.post("/api/things").status_code == 200
    assert client.put("/api/things/1").status_code == 405
    assert client.get("/api/nothing").status_code == 404
    assert client.put("/api/nothing").status_code == 404
