from __future__ import annotations

from datetime import UTC, datetime, timedelta


def moment(after_seconds: float = 0.0) -> datetime:
    """Naive UTC with microseconds, for outbox timing columns (DATETIME(6))."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now + timedelta(seconds=after_seconds) if after_seconds else now
