"""A background relay that drains a service's outbox with retries.

The outbox itself (a SQL table or a Mongo collection) belongs to the service;
it implements :class:`OutboxStore`. The relay claims due items, hands each to a
handler, and marks it done or schedules a retry with exponential backoff and
jitter. Items are claimed with a lease, so a crashed process's items come back.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from common.request_context import set_request_id

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Claimed(Generic[T]):
    id: str
    attempts: int
    payload: T


class OutboxStore(Protocol[T]):
    def claim_due(self, limit: int) -> Sequence[Claimed[T]]: ...

    def mark_done(self, item_id: str) -> None: ...

    def mark_retry(self, item_id: str, delay_seconds: float, error: str) -> None: ...

    def mark_failed(self, item_id: str, error: str) -> None: ...


class PermanentFailure(Exception):
    """The handler says retrying cannot help (e.g. the remote refused the data)."""


def backoff_delay(attempts: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * 2 ** max(attempts - 1, 0)))


class OutboxRelay(Generic[T]):
    def __init__(
        self,
        name: str,
        store: OutboxStore[T],
        handler: Callable[[T], None],
        *,
        poll_interval: float = 1.0,
        batch_size: int = 20,
        max_attempts: int = 20,
        backoff_base: float = 1.0,
        wake_event: threading.Event | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.handler = handler
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self._stop = threading.Event()
        # Shared with the producers when they are built before the relay (see wake()).
        self._wake = wake_event or threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OutboxRelay[T]:
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Deliver now instead of at the next poll (called after a request stores mail)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                processed = self.drain_once()
            except Exception:  # noqa: BLE001 - the relay must outlive a bad poll
                log.exception("outbox_poll_failed", extra={"outbox": self.name})
                processed = 0
            if processed == 0:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def drain_once(self) -> int:
        items = self.store.claim_due(self.batch_size)
        for item in items:
            self._deliver(item)
        return len(items)

    def _deliver(self, item: Claimed[T]) -> None:
        set_request_id(f"{self.name}-{item.id}")
        try:
            self.handler(item.payload)
        except PermanentFailure as exc:
            log.warning("outbox_item_failed", extra={"outbox": self.name, "error": str(exc)})
            self.store.mark_failed(item.id, str(exc))
        except Exception as exc:  # noqa: BLE001 - any failure is retried later
            if item.attempts >= self.max_attempts:
                self.store.mark_failed(item.id, repr(exc))
                log.error("outbox_item_gave_up", extra={"outbox": self.name, "error": repr(exc)})
                return
            delay = backoff_delay(item.attempts, self.backoff_base)
            log.warning(
                "outbox_item_retry",
                extra={"outbox": self.name, "attempts": item.attempts, "delay": round(delay, 2)},
            )
            self.store.mark_retry(item.id, delay, repr(exc))
        else:
            self.store.mark_done(item.id)
