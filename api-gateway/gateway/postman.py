"""A Postman collection (v2.1) made from the OpenAPI spec, so it cannot drift either."""

from __future__ import annotations

import json
from typing import Any

POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"


def _item(path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    segments = [
        "{{" + part[1:-1] + "}}" if part.startswith("{") else part
        for part in path.strip("/").split("/")
    ]
    query = [
        {"key": p["name"], "value": "", "disabled": True}
        for p in operation.get("parameters", [])
        if p["in"] == "query"
    ]
    request: dict[str, Any] = {
        "method": method.upper(),
        "header": [{"key": "Content-Type", "value": "application/json"}],
        "url": {
            "raw": "{{baseUrl}}/" + "/".join(segments),
            "host": ["{{baseUrl}}"],
            "path": segments,
            "query": query,
        },
        "description": operation.get("description", ""),
    }
    if any("bearerAuth" in s for s in operation.get("security", [])):
        request["auth"] = {
            "type": "bearer",
            "bearer": [{"key": "token", "value": "{{accessToken}}", "type": "string"}],
        }
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body:
        request["body"] = {
            "mode": "raw",
            "raw": json.dumps(body.get("example", {}), indent=2),
            "options": {"raw": {"language": "json"}},
        }
    return {"name": operation["summary"], "request": request}


def postman_collection(spec: dict[str, Any], base_url: str) -> dict[str, Any]:
    folders: dict[str, list[dict[str, Any]]] = {}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            folders.setdefault(operation["tags"][0], []).append(_item(path, method, operation))
    return {
        "info": {"name": spec["info"]["title"], "schema": POSTMAN_SCHEMA},
        "item": [{"name": tag, "item": items} for tag, items in folders.items()],
        "variable": [
            {"key": "baseUrl", "value": base_url},
            {"key": "accessToken", "value": ""},
        ],
    }
