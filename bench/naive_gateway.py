"""The textbook gateway the benchmark calibrates against — never deployed.

Flask + flask-jwt-extended's ``@jwt_required`` (which decodes each token three
times) + one shared ``httpx.Client``, doing the same work per request as the real
gateway: verify the access token, run the same Redis revocation check, forward
``GET /api/course/<id>`` with the caller's identity and relay the answer. It runs
under the same gunicorn settings on the same machine in the same run, so
"real / naive" is a ratio a noisy 2-core VM cannot distort the way absolute
milliseconds are distorted.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from flask import Flask, Response
from flask_jwt_extended import JWTManager, get_jwt, jwt_required
from redis import Redis

from common.http import INTERNAL_KEY_HEADER
from common.identity import USER_ID_HEADER, USER_ROLE_HEADER


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(JWT_SECRET_KEY=os.environ["JWT_SECRET_KEY"], JWT_DECODE_LEEWAY=10)
    jwt = JWTManager(app)
    redis = Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    client = httpx.Client(
        base_url=os.environ["COURSES_URL"],
        headers={INTERNAL_KEY_HEADER: os.environ["INTERNAL_API_KEY"]},
    )

    @jwt.token_in_blocklist_loader
    def revoked(_header: dict[str, Any], claims: dict[str, Any]) -> bool:
        pipe = redis.pipeline(transaction=False)
        pipe.exists(f"gw:bl:{claims['jti']}")
        pipe.get(f"gw:tva:{claims['sub']}")
        pipe.exists(f"gw:sess:{claims.get('sid')}")
        blocked, valid_after, alive = pipe.execute()
        return bool(blocked) or not alive or int(valid_after or 0) > claims["iat_ms"]

    @app.get("/api/course/<int:course_id>")
    @jwt_required()
    def get_course(course_id: int) -> Response:
        claims = get_jwt()
        answer = client.get(
            f"/courses/{course_id}",
            headers={USER_ID_HEADER: claims["sub"], USER_ROLE_HEADER: claims["role"]},
        )
        return Response(
            answer.content, answer.status_code, content_type=answer.headers["content-type"]
        )

    return app
