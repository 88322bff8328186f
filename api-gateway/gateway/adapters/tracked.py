"""The per-request token check, answered from a local copy that Redis keeps fresh.

Every forwarded request asks Redis three things (is the token blocklisted, is its
session alive, when did the user's tokens last become invalid); that round trip
was a third of the gateway's CPU per request. Redis's server-assisted client-side
caching (``CLIENT TRACKING``, redirect mode) removes most of them: Redis remembers
every key this process read on its *reader* connection and, the moment such a key
is written, deleted, expired, evicted or flushed, pushes its name to our *listener*
connection. Before each lookup the pending pushes are applied, under the same lock
as the lookup. Every revoking write in :class:`gateway.adapters.state.GatewayState`
ends with a fence (one more round trip), so by the time a revocation is answered,
Redis has written the pushes to every worker; on one host the next request sees it.
Across hosts it counts from when the push arrives (a lost packet delays it by TCP's
retransmit), and never later than ``max_age``.

What keeps the copy honest when things go wrong:

- any error, or either connection closing or speaking out of turn, drops the copy
  and both connections; both are built without redis-py's retry and health check,
  and are checked before use, so neither can come back untracked behind our back;
- a read and the storing of its answer happen under the lock, so no push can be
  applied in between and leave a stale answer behind;
- after a long run of pushes (their tail may still wait in Redis's output buffer),
  a PING on the listener is read back before anything is trusted: its answer queues
  behind every push Redis still holds;
- a key with a TTL is stored only until that TTL ends (measured from before the
  read), whenever Redis gets round to expiring it;
- every entry is re-read after ``max_age`` seconds: the bound for the failures no
  one sees, such as a connection a fail-over or a NAT dropped without a FIN;
- when the lock is busy for long (a slow Redis), or Redis refuses tracking (an ACL,
  a proxy without ``CLIENT TRACKING``), :meth:`read` answers None and the caller
  asks Redis directly, as it would without the copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, RedisError, ResponseError
from redis.retry import Retry

log = logging.getLogger(__name__)

INVALIDATION_CHANNEL = "__redis__:invalidate"
LISTENER_NAME = "gateway-tracking-listener"
READER_NAME = "gateway-tracked-reader"
DEFAULT_MAX_AGE_SECONDS = 2.0
DEFAULT_MAX_ENTRIES = 50_000
# Pushes applied in one go after which the rest may still be queued in Redis: read a
# PING back before trusting the copy. Far fewer than fill a socket buffer or one of
# Redis's 64 KB writes (a push names one of our keys: well under 200 bytes).
BARRIER_AFTER_PUSHES = 8
LOCK_WAIT_SECONDS = 0.05
REFUSAL_RETRY_SECONDS = 60.0
DEFAULT_SOCKET_TIMEOUT = 1.0
_MISSING = -2  # PTTL's answer for a key that does not exist
Answer = dict[str, tuple[bool, str | None]]


class TrackedReads:
    """A local copy of single Redis keys, each dropped as soon as Redis says it changed.

    ``read(values, presence)`` answers ``{key: (exists, value)}``: the value of each
    string key in ``values``, only whether it exists for each key in ``presence`` (any
    type); or None when the caller should ask Redis itself. Thread-safe. One per
    process, made on first use, so after gunicorn forks (the container builds it
    lazily), even with ``--preload``.
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
        kwargs = {
            name: value
            for name, value in pool.connection_kwargs.items()
            if not name.startswith("maint_notifications")
        }
        # RESP2: the listener's pushes arrive as pub/sub messages whatever REDIS_URL asks.
        # No retry, no health-check ping: either could reconnect a connection behind our
        # back, and a reconnected one is no longer tracked or subscribed.
        kwargs.update(
            # A bound on every wait, the PING barrier's included.
            socket_timeout=kwargs.get("socket_timeout") or DEFAULT_SOCKET_TIMEOUT,
            protocol=2,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            decode_responses=True,
        )
        self._kwargs = kwargs
        self._connection_class: Any = pool.connection_class
        self._max_age = max_age
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[bool, str | None, float]] = {}
        self._listener: Any = None
        self._reader: Any = None
        self._refused_until = float("-inf")

    # -- the one public operation ----------------------------------------------------------

    def read(self, values: tuple[str, ...], presence: tuple[str, ...] = ()) -> Answer | None:
        if self.refused or not self._lock.acquire(timeout=LOCK_WAIT_SECONDS):
            return None  # the caller asks Redis itself
        try:
            had_connections = self._reader is not None
            try:
                return self._read(values, presence)
            except RedisError:
                self._reset()
                if not had_connections:
                    raise
            # A connection that served earlier requests died since (a restart, a kill):
            # once more, on a new pair; as the shared client does, one retry.
            return self._read(values, presence)
        except BaseException:
            self._reset()
            raise
        finally:
            self._lock.release()

    def entries(self) -> int:
        return len(self._entries)

    @property
    def refused(self) -> bool:
        """Redis said no to tracking (an ACL, a proxy without it): ask again later."""
        return self._clock() < self._refused_until

    def close(self) -> None:
        with self._lock:
            self._reset()

    # -- the copy ------------------------------------------------------------------------

    def _read(self, values: tuple[str, ...], presence: tuple[str, ...]) -> Answer | None:
        if self._reader is not None:
            self._check_connections()
            self._apply_pushes()
        answer = self._from_copy(values + presence)
        if answer is None:
            answer = self._from_redis(values, presence)
        return answer

    def _from_copy(self, keys: tuple[str, ...]) -> Answer | None:
        now = self._clock()
        answer = {}
        for key in keys:
            entry = self._entries.get(key)
            if entry is None or entry[2] <= now:
                return None
            answer[key] = (entry[0], entry[1])
        return answer

    def _from_redis(self, values: tuple[str, ...], presence: tuple[str, ...]) -> Answer | None:
        reader = self._connected_reader()
        if reader is None:
            return None
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

    # -- pushes ----------------------------------------------------------------------------

    def _check_connections(self) -> None:
        """Both open, and the idle reader silent: anything readable there is a close
        (Redis stopped tracking for it, and sends no push to say so). A connection
        redis-py closed on an error would reconnect untracked on its next use; read()
        resets both on any error too, this is the second lock on that door."""
        if self._listener._sock is None or self._reader._sock is None:  # noqa: SLF001
            raise RedisConnectionError("a tracking connection was closed")
        if self._reader.can_read(timeout=0):
            raise RedisConnectionError("the tracked reader spoke out of turn")

    def _apply_pushes(self) -> None:
        applied = 0
        while self._listener.can_read(timeout=0):
            self._apply(self._listener.read_response(), pong_expected=False)
            applied += 1
        if applied >= BARRIER_AFTER_PUSHES:
            self._listener.send_command("PING")
            while not self._apply(self._listener.read_response(), pong_expected=True):
                pass

    def _apply(self, message: Any, *, pong_expected: bool) -> bool:
        """Apply one listener message; True when it is the barrier's answer."""
        kind = message[0] if isinstance(message, list) and message else None
        if kind == "pong" and pong_expected:
            return True
        if kind != "message" or len(message) != 3:
            raise RedisConnectionError(f"unexpected message on the listener: {message!r}")
        keys = message[2]
        if keys is None:  # FLUSHALL / FLUSHDB
            self._entries.clear()
        else:
            for key in keys:
                self._entries.pop(key, None)
        return False

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
        except ResponseError as exc:
            # Refused for good (until asked again), or for a moment (a busy script):
            # either way this request reads Redis directly.
            listener.disconnect()
            reader.disconnect()
            if _is_refusal(exc):
                self._refused_until = self._clock() + REFUSAL_RETRY_SECONDS
                log.warning("redis_tracking_refused", extra={"error": str(exc)})
            return None
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


def _is_refusal(error: ResponseError) -> bool:
    text = str(error).lower()
    return (
        isinstance(error, NoPermissionError)
        or "unknown command" in text
        or "unknown subcommand" in text
    )
