"""The whole platform as real processes behind nginx, for the schemathesis suite.

The profile is the end-to-end one with the rate limits raised: every request comes
from 127.0.0.1, and the suite must really exercise login, registration, activation,
resend and reset instead of meeting a 429 after five of them (the limits themselves
keep their own tests in ``api-gateway/tests``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.devservers import MariaDB, Redis
from devtools.launcher import Platform, PlatformConfig, Ports

ADMIN = {
    "email": "admin@contract.example.org",
    "username": "contract-admin",
    "password": "correct horse battery staple contract",
}
# A Redis database of its own: the end-to-end platform of the same session uses db 0.
REDIS_DB = 5
RAISED_LIMIT = "100000/minute"
TEST_PROFILE = {
    "gateway": {
        # Per client IP, one bucket per route: login, MFA verify, registration,
        # activation, resend, forgot and reset.
        "AUTH_RATE_LIMIT": RAISED_LIMIT,
        # Per account: password change, MFA enable and disable.
        "ACCOUNT_RATE_LIMIT": RAISED_LIMIT,
    },
    "users": {
        # At most one activation or reset mail per account per window: 0 lets every
        # resend and forgot request really queue a mail.
        "ACTIVATION_RESEND_SECONDS": "0",
        "RESET_RESEND_SECONDS": "0",
        # Platform-wide cap on activation attempts by code alone ({"code"} without an
        # identifier): the fuzzer sends hundreds.
        "ACTIVATION_CODE_ONLY_MAX_ATTEMPTS": "1000000",
    },
    "learning": {
        # Learning keeps a course's author and status, and an access granted, for a few
        # seconds (a documented trade-off): a course deleted a moment ago still shows its
        # outline meanwhile, which schemathesis's use_after_free rightly reports. Off here,
        # so the check holds the API to "deleted means gone"; see EXCLUSIONS.
        "ACCESS_CACHE_SECONDS": "0",
    },
}


@pytest.fixture(scope="module")
def contract_platform(
    mariadb: MariaDB, redis_server: Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    config = PlatformConfig(
        ports=Ports.free(),
        run_dir=Path(tmp_path_factory.mktemp("contract-platform")),
        internal_api_key=secrets.token_urlsafe(40),
        jwt_secret_key=secrets.token_urlsafe(40),
        totp_encryption_key=secrets.token_urlsafe(40),
        fakturownia_api_token=secrets.token_urlsafe(20),
        courses_database_url=mariadb.create_database("contract_courses"),
        enrolments_database_url=mariadb.create_database("contract_enrolments"),
        learning_database_url=mariadb.create_database("contract_learning"),
        redis_url=redis_server.url.rsplit("/", 1)[0] + f"/{REDIS_DB}",
        admin=ADMIN,
        environment="development",
        extra_env=TEST_PROFILE,
    )
    running = Platform(config).start(require_nginx=True)
    yield running
    running.stop()
