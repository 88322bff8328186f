"""The local copy of the token-check keys (gateway/adapters/tracked.py) against a real
Redis: it answers without a round trip, and it is never staler than Redis says."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from devtools.devservers import Redis
from gateway.adapters.state import GatewayState, connect, now_ms
from gateway.adapters.tracked import LISTENER_NAME, READER_NAME, TrackedReads


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    # Our own server: DEBUG (to stop active expiry) and command counters per test.
    workdir = Path(tmp_path_factory.mktemp("tracked-redis"))
    extra = ["--enable-debug-command", "yes", "--unixsocket", str(workdir / "redis.sock")]
    instance = Redis(workdir, extra_args=extra).start()
    yield instance
    instance.stop()


@pytest.fixture
def store(server: Redis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    client.flushdb()
    client.config_resetstat()
    yield client
    client.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 1)
    client.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reads(server: Redis) -> Iterator[TrackedReads]:
    tracked = TrackedReads(connect(server.url), max_age=60)
    yield tracked
    tracked.close()


def pttl_calls(store: redis.Redis) -> int:
    return int(store.info("commandstats").get("cmdstat_pttl", {}).get("calls", 0))


def client_id(store: redis.Redis, name: str) -> int:
    return next(int(c["id"]) for c in store.client_list() if c["name"] == name)


def test_a_repeated_read_is_answered_without_redis(store: redis.Redis, reads: TrackedReads):
    store.set("k", "v")
    assert reads.read(("k",), ("absent",)) == {"k": (True, "v"), "absent": (False, None)}
    asked = pttl_calls(store)
    for _ in range(50):
        assert reads.read(("k",), ("absent",)) == {"k": (True, "v"), "absent": (False, None)}
    assert pttl_calls(store) == asked


@pytest.mark.parametrize(
    "write",
    [
        lambda s: s.set("k", "new"),
        lambda s: s.delete("k"),
        lambda s: s.set("absent", "now here"),
        lambda s: s.hset("absent", "uid", "u-1"),
        lambda s: s.eval("redis.call('DEL', KEYS[1])", 1, "k"),
    ],
    ids=["set", "delete", "create", "create-hash", "lua-script"],
)
def test_a_write_is_seen_by_the_very_next_read(store: redis.Redis, reads: TrackedReads, write):
    store.set("k", "v")
    reads.read(("k",), ("absent",))
    write(store)
    answer = reads.read(("k",), ("absent",))
    assert answer["k"] == (store.exists("k") == 1, store.get("k"))
    assert answer["absent"][0] == (store.exists("absent") == 1)


def test_every_acknowledged_write_is_seen_while_other_threads_read(
    store: redis.Redis, reads: TrackedReads
):
    # Other threads keep re-filling the copy between the writes; a push applied between
    # a read and the storing of its answer would leave an old value behind. (Without the
    # fence this failed once in a loaded run: Redis may write the SET's reply before the
    # push.)
    done = threading.Event()

    def keep_reading() -> None:
        while not done.is_set():
            reads.read(("counter",))

    readers = [threading.Thread(target=keep_reading) for _ in range(4)]
    for thread in readers:
        thread.start()
    try:
        for number in range(300):
            store.set("counter", number)
            store.ping()  # the fence every revoking write in GatewayState ends with
            assert reads.read(("counter",))["counter"] == (True, str(number))
    finally:
        done.set()
        for thread in readers:
            thread.join()


def test_an_entry_ends_with_its_keys_ttl_even_before_redis_expires_it(
    store: redis.Redis, reads: TrackedReads
):
    store.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)  # Redis would only expire on access
    store.set("session", "1", px=200)
    assert reads.read((), ("session",))["session"] == (True, None)
    time.sleep(0.3)
    assert reads.read((), ("session",))["session"] == (False, None)


def test_a_lost_listener_drops_the_copy(store: redis.Redis, reads: TrackedReads):
    store.set("k", "v")
    reads.read(("k",))
    store.client_kill_filter(_id=client_id(store, LISTENER_NAME))
    store.set("k", "changed while nobody listened")
    assert reads.read(("k",))["k"] == (True, "changed while nobody listened")
    # ...and the new pair of connections tracks again.
    store.set("k", "after")
    assert reads.read(("k",))["k"] == (True, "after")


def test_a_lost_reader_starts_a_new_tracked_pair(store: redis.Redis, reads: TrackedReads):
    store.set("k", "v")
    reads.read(("k",))
    store.client_kill_filter(_id=client_id(store, READER_NAME))
    store.set("absent", "x")  # a key first read after the reader came back
    assert reads.read(("absent",))["absent"] == (True, "x")
    store.set("absent", "y")
    assert reads.read(("absent",))["absent"] == (True, "y")


def test_a_flush_empties_the_copy(store: redis.Redis, reads: TrackedReads):
    store.set("k", "v")
    reads.read(("k",))
    store.flushdb()
    assert reads.read(("k",))["k"] == (False, None)


def test_max_age_bounds_a_silent_loss_of_pushes(store: redis.Redis, server: Redis):
    clock = FakeClock()
    reads = TrackedReads(connect(server.url), max_age=5, clock=clock)
    try:
        store.set("k", "v")
        reads.read(("k",))
        # A listener that stopped hearing pushes without its socket closing (the case
        # a fail-over can leave): only the age limit brings the truth back.
        reads._listener.send_command("UNSUBSCRIBE")  # noqa: SLF001 - simulating the loss
        reads._listener.read_response()  # noqa: SLF001
        store.set("k", "changed")
        clock.now += 4.9
        assert reads.read(("k",))["k"] == (True, "v")
        clock.now += 0.2
        assert reads.read(("k",))["k"] == (True, "changed")
    finally:
        reads.close()


def test_pushes_still_queued_in_redis_are_waited_for(store: redis.Redis, reads: TrackedReads):
    # A listener socket with little room: most of a long run of pushes stays in Redis's
    # output buffer, behind the fence, until the listener drains what it was sent.
    for number in range(600):
        reads.read((f"k{number}",))
    reads.read(("session",))
    reads._listener._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # noqa: SLF001
    store.mset({f"k{number}": "x" for number in range(600)})
    store.set("session", "revoked")
    store.ping()
    assert reads.read(("session",))["session"] == (True, "revoked")


def test_a_lost_reader_is_noticed_before_the_copy_is_used(store: redis.Redis, reads: TrackedReads):
    # Redis stops tracking for a closed reader and sends no push to say so.
    reads.read(("k",))
    store.client_kill_filter(_id=client_id(store, READER_NAME))
    store.set("k", "written after the reader was gone")
    store.ping()
    assert reads.read(("k",))["k"] == (True, "written after the reader was gone")


def test_an_error_of_any_kind_starts_a_new_tracked_pair(store: redis.Redis, reads: TrackedReads):
    store.set("not-text", b"\xff\xfe")
    with pytest.raises(UnicodeDecodeError):
        reads.read(("not-text",))
    # redis-py closed the connections; one reconnected silently would not be tracked.
    reads.read(("k",))
    store.set("k", "new")
    assert reads.read(("k",))["k"] == (True, "new")


def test_a_busy_copy_sends_the_caller_to_redis(server: Redis, store: redis.Redis):
    client = connect(server.url)
    tracked = TrackedReads(client)
    state = GatewayState(client, tracked)
    store.set("gw:tva:u-9", 7)
    try:
        with tracked._lock:  # noqa: SLF001 - a slow Redis call holding it elsewhere
            started = time.monotonic()
            assert tracked.read(("gw:tva:u-9",)) is None
            assert state.token_status("a-9", "u-9", "s-9").tokens_valid_after == 7
            assert time.monotonic() - started < 1
    finally:
        tracked.close()


def test_a_resp3_url_still_tracks(server: Redis, store: redis.Redis):
    tracked = TrackedReads(connect(server.url + "?protocol=3"))
    try:
        store.set("k", "v")
        tracked.read(("k",))
        store.set("k", "new")
        assert tracked.read(("k",))["k"] == (True, "new")
    finally:
        tracked.close()


def test_a_redis_that_refuses_tracking_is_asked_directly_then_again_later(
    server: Redis, store: redis.Redis
):
    store.acl_setuser(
        "no-tracking",
        enabled=True,
        passwords=["+secret-password"],
        commands=["+@all", "-client"],
        keys=["*"],
        channels=["*"],
    )
    client = connect(f"redis://no-tracking:secret-password@127.0.0.1:{server.port}/0")
    clock = FakeClock()
    tracked = TrackedReads(client, clock=clock)
    state = GatewayState(client, tracked)
    try:
        assert tracked.read(("k",)) is None
        assert tracked.refused
        store.set("gw:tva:u-8", 8)
        assert state.token_status("a-8", "u-8", "s-8").tokens_valid_after == 8
        store.acl_setuser("no-tracking", enabled=True, commands=["+client"])
        clock.now += 61
        assert tracked.read(("gw:tva:u-8",)) == {"gw:tva:u-8": (True, "8")}
        assert not tracked.refused
    finally:
        tracked.close()
        store.acl_deluser("no-tracking")


def test_a_busy_redis_is_not_a_refusal(server: Redis, store: redis.Redis):
    store.config_set("busy-reply-threshold", 10)
    busy = threading.Thread(
        target=lambda: redis.Redis.from_url(server.url).eval(
            "local t = redis.call('TIME'); local stop = t[1] * 1e6 + t[2] + 400000 "
            "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= stop",
            0,
        )
    )
    tracked = TrackedReads(connect(server.url))
    try:
        busy.start()
        time.sleep(0.1)
        assert tracked.read(("k",)) is None  # BUSY while setting up: ask Redis directly
        assert not tracked.refused
        busy.join()
        store.set("k", "v")
        tracked.read(("k",))
        store.set("k", "new")
        assert tracked.read(("k",))["k"] == (True, "new")
    finally:
        busy.join()
        tracked.close()
        store.config_set("busy-reply-threshold", 5000)


def test_a_unix_socket_url_tracks(server: Redis, store: redis.Redis):
    tracked = TrackedReads(connect(f"unix://{server.workdir / 'redis.sock'}?db=0"))
    try:
        tracked.read(("k",))
        store.set("k", "over the socket")
        assert tracked.read(("k",))["k"] == (True, "over the socket")
    finally:
        tracked.close()


def test_the_copy_is_bounded(store: redis.Redis, server: Redis):
    reads = TrackedReads(connect(server.url), max_entries=3)
    try:
        for number in range(10):
            reads.read((f"k{number}",))
        assert reads.entries() == 3
    finally:
        reads.close()


def test_redis_down_is_an_error_not_an_old_answer(tmp_path: Path):
    lone = Redis(tmp_path).start()
    reads = TrackedReads(connect(lone.url))
    try:
        redis.Redis.from_url(lone.url).set("k", "v")
        reads.read(("k",))
        lone.stop()
        with pytest.raises(redis.RedisError):
            reads.read(("k",))
    finally:
        reads.close()
        lone.stop()


def new_session(state: GatewayState, user_id: str) -> str:
    session_id, _ = state.create_session(
        user_id=user_id,
        role="user",
        amr=["pwd"],
        refresh_jti=f"refresh-of-{user_id}",
        ip="127.0.0.1",
        user_agent="test",
        idle_seconds=3600,
        absolute_seconds=3600,
        started_ms=now_ms(),
    )
    return session_id


def test_revoking_a_session_is_seen_by_the_next_token_check(server: Redis, store: redis.Redis):
    client = connect(server.url)
    state = GatewayState(client, TrackedReads(client))
    session_id = new_session(state, "u-1")
    state.cache_tokens_valid_after("u-1", 0)
    assert state.token_status("a-1", "u-1", session_id).session_alive
    state.blocklist("a-1", int(time.time()) + 60)
    assert state.token_status("a-1", "u-1", session_id).blocklisted
    state.cache_tokens_valid_after("u-1", 123)
    assert state.token_status("a-2", "u-1", session_id).tokens_valid_after == 123
    assert state.revoke_session(session_id, "u-1")
    assert not state.token_status("a-2", "u-1", session_id).session_alive


def test_every_revoking_write_is_fenced(server: Redis, store: redis.Redis):
    client = connect(server.url)
    state = GatewayState(client, TrackedReads(client))
    session_id = new_session(state, "u-2")
    revocations = [
        lambda: state.blocklist("a-3", int(time.time()) + 60),
        lambda: state.cache_tokens_valid_after("u-2", 5),
        lambda: state.prime_tokens_valid_after("u-2", 6, now_ms()),
        lambda: state.rotate(
            session_id=session_id,
            user_id="u-2",
            presented_jti="not-current",
            new_jti="r-3",
            idle_seconds=60,
            ip="127.0.0.1",
            user_agent="test",
        ),
        lambda: state.revoke_session(session_id, "u-2"),
        lambda: state.invalidate_user("u-2"),
    ]
    for revoke in revocations:
        pings = int(store.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))
        revoke()
        assert store.info("commandstats")["cmdstat_ping"]["calls"] == pings + 1
