"""The gateway's one-decode access-token verifier accepts only what login issues."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt as pyjwt
import pytest

from common.errors import Unauthorized
from gateway.access import decode_access_token

KEY = b"k" * 40


def token(key: bytes = KEY, algorithm: str = "HS256", **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "u1",
        "jti": "j1",
        "iat": now,
        "exp": now + 60,
        "role": "user",
        "type": "access",
        "sid": "s1",
        "iat_ms": now * 1000,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return pyjwt.encode(claims, key, algorithm=algorithm)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_token_gives_its_claims():
    claims = decode_access_token(token(), KEY)
    assert (claims["sub"], claims["role"], claims["sid"]) == ("u1", "user", "s1")


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: token(key=b"x" * 40), id="other-key"),
        pytest.param(lambda: token(algorithm="HS512"), id="other-algorithm"),
        pytest.param(
            lambda: (
                b64({"alg": "none", "typ": "JWT"})
                + "."
                + b64(
                    {
                        "sub": "u1",
                        "jti": "j",
                        "iat": 1,
                        "exp": 2**40,
                        "role": "admin",
                        "type": "access",
                    }
                )
                + "."
            ),
            id="alg-none",
        ),
        pytest.param(lambda: token(exp=int(time.time()) - 11), id="expired"),
        pytest.param(lambda: token(iat=int(time.time()) + 3600), id="issued-in-future"),
        pytest.param(lambda: token(type="refresh"), id="refresh-as-access"),
        pytest.param(lambda: token(role=None), id="no-role"),
        pytest.param(lambda: token(sub=None), id="no-subject"),
        pytest.param(lambda: token(sub=7), id="numeric-subject"),
        pytest.param(lambda: "a.b", id="two-segments"),
        pytest.param(lambda: "!!.??.**", id="not-base64"),
        # The header is parsed before the signature is checked: a 4 kB header of brackets
        # must be refused like any other forgery, not crash json.loads with RecursionError.
        pytest.param(
            lambda: base64.urlsafe_b64encode(b"[" * 3000).decode() + "." + b64({}) + ".c2ln",
            id="deeply-nested-header",
        ),
    ],
)
def test_anything_else_is_unauthorized(bad):
    with pytest.raises(Unauthorized):
        decode_access_token(bad(), KEY)


def test_tampered_payload_is_unauthorized():
    header, _, signature = token().split(".")
    forged = b64(
        {
            "sub": "u1",
            "jti": "j1",
            "iat": int(time.time()),
            "exp": 2**40,
            "role": "admin",
            "type": "access",
        }
    )
    with pytest.raises(Unauthorized):
        decode_access_token(f"{header}.{forged}.{signature}", KEY)


def test_expiry_has_a_small_leeway_only():
    now = time.time()
    assert decode_access_token(token(exp=int(now) - 5), KEY, now=now)
    with pytest.raises(Unauthorized):
        decode_access_token(token(exp=int(now) - 10), KEY, now=now)
