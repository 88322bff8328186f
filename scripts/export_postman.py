"""`make postman`: write the Postman collection of the public API to var/postman.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from gateway import create_app
from gateway.openapi import build_spec
from gateway.postman import postman_collection
from gateway.settings import GatewaySettings


def main() -> int:
    app = create_app(GatewaySettings(environment="development", jwt_secret_key="x" * 40))
    base_url = os.environ.get("BASE_URL", "http://127.0.0.1:8080")
    collection = postman_collection(build_spec(app), base_url)
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "var/postman.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(collection, indent=2))
    count = sum(len(folder["item"]) for folder in collection["item"])
    print(f"wrote {count} requests to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
