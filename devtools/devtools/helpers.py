"""Small helpers shared by the services' test fixtures."""

from __future__ import annotations

from sqlalchemy import MetaData, text

from common.db import Database
from common.http import INTERNAL_KEY_HEADER
from common.identity import USER_ID_HEADER, USER_ROLE_HEADER

# Test-only keys: long enough to pass the settings' secret checks.
TEST_INTERNAL_KEY = "test-internal-key-0123456789abcdefghijklmnop"
TEST_JWT_SECRET = "test-jwt-signing-key-0123456789abcdefghijklmn"


def internal_headers(user_id: str | None = None, role: str = "user") -> dict[str, str]:
    """Headers the gateway would send: the internal key and, optionally, a caller."""
    headers = {INTERNAL_KEY_HEADER: TEST_INTERNAL_KEY}
    if user_id is not None:
        headers[USER_ID_HEADER] = user_id
        headers[USER_ROLE_HEADER] = role
    return headers


def truncate_all(database: Database, metadata: MetaData) -> None:
    """Empty every table (fast on MariaDB with foreign key checks off)."""
    with database.engine.begin() as connection:
        if database.is_sqlite:
            for table in reversed(metadata.sorted_tables):
                connection.execute(table.delete())
            return
        connection.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        for table in metadata.sorted_tables:
            connection.execute(text(f"TRUNCATE TABLE `{table.name}`"))
        connection.execute(text("SET FOREIGN_KEY_CHECKS=1"))
