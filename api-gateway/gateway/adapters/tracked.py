"""The per-request token check, answered from a local copy that Redis keeps exact.

Every forwarded request asks Redis three things (is the token blocklisted, is its
session alive, when did the user's tokens last become invalid); that round trip
was a third of the gateway's CPU per request. Redis's server-assisted client-side
caching (``CLIENT TRACKING``, redirect mode) removes it without making revocation
late: Redis remembers every key this process read on its *reader* connection and,
the moment such a key is written, deleted, expired, evicted or flushed, pushes its
name to our *listener* connection. Before each lookup the listener's pending
pushes are applied, under the same lock as the lookup, so a revocation whose write
has been acknowledged is seen by the next request here (the push leaves Redis in
the same event-loop pass as the revoker's reply).

What keeps it exact when things go wrong:

- a lost listener or reader connection clears the copy and starts again; both are
  built without redis-py's silent reconnect, which would bring back a connection
  that is no longer tracked;
- a read and the storing of its answer happen under the lock, so no push can be
  applied in between and leave a stale answer behind;
- a key with a TTL is stored only until that TTL ends (measured from before the
  read), whenever Redis gets round to expiring it;
- every entry is re-read after ``max_age`` seconds, which bounds the damage of the
  one failure nobody sees: a connection that died without a FIN (say, a fail-over)
  so its pushes never come.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

INVALIDATION_CHANNEL = "__redis__:invalidate"
LISTENER_NAME = "gateway-tracking-listener"
READER_NAME = "gateway-tracked-reader"
DEFAULT_MAX_AGE_SECONDS = 5.0
DEFAULT_MAX_ENTRIES = 50_000
BACKLOG_LIMIT = 1000  # pushes applied in one go before the whole copy is distrusted
_MISSING = -2  # PTTL's answer for a key that does not exist


class TrackedReads:
    """A local copy of single Redis keys, each dropped as soon as Redis says it changed.

    ``read(values, presence)`` answers ``{key: (exists, value)}``: the value of each
    string key in ``values``, only whether it exists for each key in ``presence`` (any
    type). Thread-safe. One per process, made on first use, so after gunicorn forks
    (the container builds it lazily), even with ``--preload``.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        max_age: float = DEFAULT_MAX_AGE_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        pool = client.connection_pool
        # No retry and no health-check ping: either could reconnect a connection
        # behind our back, and a reconnected one is no longer tracked or subscribed.
        # Every error reaches read(), which drops both and starts a new pair.
        self._kwargs = {
            **pool.connection_kwargs,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
            "decode_responses": True,
        }
        self._connection_class: Any = pool.connection_class
        self._max_age = max_age
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[bool, str | None, float]] = {}
        self._listener: Any = None
        self._reader: Any = None

    # -- the one public operation ----------------------------------------------------------

    def read(
        self, values: tuple[str, ...], presence: tuple[str, ...] = ()
    ) -> dict[str, tuple[bool, str | None]]:
        with self._lock:
            had_connections = self._reader is not None
            try:
                return self._read(values, presence)
            except RedisError:
                self._reset()
                if not had_connections:
                    raise
            # A connection that served earlier requests died since (a restart, a kill):
            # once more, on a new pair; as the shared client does, one retry.
            try:
                return self._read(values, presence)
            except RedisError:
                self._reset()
                raise

    def entries(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        with self._lock:
            self._reset()

    # -- the copy ------------------------------------------------------------------------

    def _read(
        self, values: tuple[str, ...], presence: tuple[str, ...]
    ) -> dict[str, tuple[bool, str | None]]:
        self._apply_pushes()
        answer = self._from_copy(values + presence)
        if answer is None:
            answer = self._from_redis(values, presence)
        return answer

    def _from_copy(self, keys: tuple[str, ...]) -> dict[str, tuple[bool, str | None]] | None:
        now = self._clock()
        answer = {}
        for key in keys:
            entry = self._entries.get(key)
            if entry is None or entry[2] <= now:
                return None
            answer[key] = (entry[0], entry[1])
        return answer

    def _from_redis(
        self, values: tuple[str, ...], presence: tuple[str, ...]
    ) -> dict[str, tuple[bool, str | None]]:
        reader = self._connected_reader()
        keys = values + presence
        commands = [("PTTL", key) for key in keys] + [("GET", key) for key in values]
        # Lifetimes count from before the read: an entry never outlives its key.
        started = self._clock()
        reader.send_packed_command(reader.pack_commands(commands))
        replies = [reader.read_response() for _ in commands]
        ttls, read_values = replies[: len(keys)], replies[len(keys) :]
        answer = {}
        for index, key in enumerate(keys):
            ttl_ms = int(ttls[index])
            value = read_values[index] if index < len(values) else None
            exists = ttl_ms != _MISSING
            lifetime = self._max_age if ttl_ms < 0 else min(self._max_age, ttl_ms / 1000)
            self._store(key, exists, value, started + lifetime)
            answer[key] = (exists, value)
        return answer

    def _store(self, key: str, exists: bool, value: str | None, deadline: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (exists, value, deadline)
        if len(self._entries) > self._max_entries:
            # Oldest first; Redis keeps tracking the key, and a later push for it is a no-op.
            del self._entries[next(iter(self._entries))]

    def _apply_pushes(self) -> None:
        listener = self._listener
        if listener is None:
            return
        applied = 0
        while listener.can_read(timeout=0):
            applied += 1
            if applied > BACKLOG_LIMIT:
                # A backlog this long may not all have fit in the socket yet: the rest
                # could still wait in Redis. Forget everything rather than trust it.
                self._entries.clear()
            message = listener.read_response()
            if not isinstance(message, list) or len(message) != 3 or message[0] != "message":
                continue
            keys = message[2]
            if keys is None:  # FLUSHALL / FLUSHDB
                self._entries.clear()
                continue
            for key in keys:
                self._entries.pop(key, None)

    # -- connections -----------------------------------------------------------------------

    def _connected_reader(self) -> Any:
        if self._reader is not None:
            return self._reader
        self._reset()
        listener = self._connection_class(**self._kwargs)
        reader = self._connection_class(**self._kwargs)
        try:
            # Named, so an operator reading CLIENT LIST knows what the two are.
            self._command(listener, "CLIENT", "SETNAME", LISTENER_NAME)
            self._command(reader, "CLIENT", "SETNAME", READER_NAME)
            listener_id = self._command(listener, "CLIENT", "ID")
            listener.send_command("SUBSCRIBE", INVALIDATION_CHANNEL)
            listener.read_response()
            self._command(reader, "CLIENT", "TRACKING", "ON", "REDIRECT", listener_id)
        except BaseException:
            listener.disconnect()
            reader.disconnect()
            raise
        self._listener, self._reader = listener, reader
        return reader

    @staticmethod
    def _command(connection: Any, *args: Any) -> Any:
        connection.send_command(*args)
        return connection.read_response()

    def _reset(self) -> None:
        self._entries.clear()
        for connection in (self._listener, self._reader):
            if connection is not None:
                connection.disconnect()
        self._listener = self._reader = None
