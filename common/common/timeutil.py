"""UTC helpers: the API speaks timezone-aware ISO 8601, the databases store naive UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_db(value: datetime) -> datetime:
    """Aware datetime to naive UTC for DATETIME columns, at the whole second
    that MySQL's DATETIME keeps, so what we return is what we stored."""
    return value.astimezone(UTC).replace(tzinfo=None, microsecond=0)


def from_db(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def db_now() -> datetime:
    return to_db(utcnow())
