"""The gateway's shared state in Redis.

Sessions (refresh-token families), the access-token blocklist, MFA-pending
tokens, per-account failure counters and the cached ``tokens_valid_after`` of
each user live here, so every worker and replica agrees. Anything that must be
atomic (rotation, MFA attempts, back-off) is one Lua script.

Keys (all prefixed ``gw:``)::

    sess:<sid>   hash  uid role amr cur(refresh jti) created used ip ua abs   TTL idle/absolute
    us:<uid>     set   the user's session ids
    bl:<jti>     "1"   blocklisted access token, until it expires
    tva:<uid>    int   tokens_valid_after (ms) as the users service last said; "deleted"
    inv:<uid>    int   when the user's sessions were last invalidated (ms)   TTL 10 min
    mfa:<hash>   hash  uid acct n(attempts) started(ms, before the password check) TTL 5 min
    fail:<acct>  int   consecutive password checks without a login (counted up front) TTL 1 day
    lock:<acct>  int   back-off in force; the number of the attempt that set it TTL 2^(n-5) s

``<acct>`` is the users service's key for the account an identifier names
(``POST /internal/credentials/account``), asked before the password is checked: one per
account whichever identifier is typed, one per canonical identifier for an unknown one.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.adapters.tracked import TrackedReads

log = logging.getLogger(__name__)

PREFIX = "gw:"
MFA_TOKEN_SECONDS = 300
MFA_MAX_ATTEMPTS = 5
TVA_CACHE_SECONDS = 60
# Longer than any login takes from password check to session (an MFA token lives 5 min).
INVALIDATION_MEMORY_SECONDS = 600
BACKOFF_THRESHOLD = 5
BACKOFF_CAP_SECONDS = 15 * 60
FAILURE_MEMORY_SECONDS = 24 * 3600
DELETED = "deleted"
REDIS_TIMEOUT = 1.0
USER_AGENT_MAX = 256


def connect(url: str) -> redis.Redis:
    """A pooled, thread-safe client. Short timeouts and a single retry: when Redis is
    down the gateway must answer 503 quickly, not hang."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


def in_process() -> redis.Redis:
    """fakeredis with Lua: a Redis for one process only (local development)."""
    import fakeredis

    return fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# A login's session or cache write is refused when the user's sessions were invalidated
# after its password check began (ARGV[1] = started ms): the check may have passed with
# the old password, and the invalidation that would have ended this session already ran.
_INVALIDATED_SINCE = """
local function invalidated_since(key, started)
  return tonumber(redis.call('GET', key) or '0') > tonumber(started)
end
"""

_CREATE_SESSION = (
    _INVALIDATED_SINCE
    + """
if invalidated_since(KEYS[3], ARGV[1]) then return 0 end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""
)

_PRIME_TVA = (
    _INVALIDATED_SINCE
    + """
if invalidated_since(KEYS[2], ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""
)

# One script, so no session can be created between reading the user's sessions and
# marking the moment (a session written before it is deleted here; one after, refused).
# The moment never moves back: of two invalidations run out of order, the later stays.
_INVALIDATE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
redis.call('DEL', KEYS[2])
local sids = redis.call('SMEMBERS', KEYS[3])
for _, sid in ipairs(sids) do redis.call('DEL', ARGV[3] .. sid) end
redis.call('DEL', KEYS[3])
return #sids
"""

_ROTATE = """
local cur = redis.call('HGET', KEYS[1], 'cur')
if not cur then return {0} end
if cur ~= ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[6])
  return {-1}
end
local now = tonumber(ARGV[3])
local ttl = math.min(tonumber(ARGV[4]), tonumber(redis.call('HGET', KEYS[1], 'abs')) - now)
if ttl <= 0 then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[6])
  return {0}
end
redis.call('HSET', KEYS[1], 'cur', ARGV[2], 'used', ARGV[3], 'ip', ARGV[5], 'ua', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ttl)
local v = redis.call('HMGET', KEYS[1], 'role', 'amr', 'abs')
return {1, v[1], v[2], v[3]}
"""

_MFA_ATTEMPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n > tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return false
end
local v = redis.call('HMGET', KEYS[1], 'uid', 'acct', 'started')
return {v[1], v[2], n, v[3]}
"""

_FAILURE = """
if ARGV[4] == 'gate' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
local threshold = tonumber(ARGV[2])
if n >= threshold then
  local wait = math.min(2 ^ (n - threshold), tonumber(ARGV[3]))
  redis.call('SET', KEYS[2], n, 'EX', math.max(1, math.floor(wait)))
end
return n
"""

# The lock holds the number of the attempt that set it: a refunded attempt lifts only
# its own lock (it was admitted, so there was none before it), never a later one's.
_REFUND = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
"""

_REVOKE_OWN = """
if redis.call('HGET', KEYS[1], 'uid') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""


class CredentialsChanged(Exception):  # noqa: N818 - a verdict, named like one
    """The user's sessions were invalidated after the login's password check began."""


@dataclass(frozen=True)
class Rotation:
    """Outcome of presenting a refresh token: ``ok``, ``reuse`` or ``gone``."""

    outcome: str
    role: str = ""
    amr: tuple[str, ...] = ()
    absolute_ms: int = 0


@dataclass(frozen=True)
class TokenStatus:
    blocklisted: bool
    session_alive: bool
    tokens_valid_after: int | str | None  # None: not cached; DELETED: the user is gone


@dataclass(frozen=True)
class MfaAttempt:
    user_id: str
    account: str
    attempt: int
    started_ms: int  # when the login's password check began


class GatewayState:
    def __init__(self, client: redis.Redis, tracked: TrackedReads | None = None) -> None:
        self.redis = client
        # None (the in-process store, tests of the plain path): every check asks Redis.
        self._tracked = tracked
        self._rotate = client.register_script(_ROTATE)
        self._mfa_attempt = client.register_script(_MFA_ATTEMPT)
        self._failure = client.register_script(_FAILURE)
        self._revoke_own = client.register_script(_REVOKE_OWN)
        self._refund = client.register_script(_REFUND)
        self._create_session = client.register_script(_CREATE_SESSION)
        self._prime_tva = client.register_script(_PRIME_TVA)
        self._invalidate = client.register_script(_INVALIDATE)

    # -- per-request check (a local copy Redis keeps fresh; else one round trip) -----------

    def token_status(self, jti: str, user_id: str, session_id: str) -> TokenStatus:
        blocklist, tva_key, session = (
            f"{PREFIX}bl:{jti}",
            f"{PREFIX}tva:{user_id}",
            f"{PREFIX}sess:{session_id}",
        )
        known = self._tracked.read((tva_key,), (blocklist, session)) if self._tracked else None
        if known is not None:
            blocked, tva, alive = known[blocklist][0], known[tva_key][1], known[session][0]
        else:
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(blocklist)
            pipe.get(tva_key)
            pipe.exists(session)
            blocked, tva, alive = pipe.execute()
        value: int | str | None = None
        if tva is not None:
            value = DELETED if tva == DELETED else int(tva)
        return TokenStatus(bool(blocked), bool(alive), value)

    def cache_tokens_valid_after(self, user_id: str, value: int | str) -> None:
        self.redis.set(f"{PREFIX}tva:{user_id}", value, ex=TVA_CACHE_SECONDS)
        self._fence()

    def prime_tokens_valid_after(self, user_id: str, value: int, started_ms: int) -> None:
        """Cache the value a login's check returned, unless an invalidation since
        ``started_ms`` made it stale (it would shadow the new value for a minute)."""
        self._prime_tva(
            keys=[f"{PREFIX}tva:{user_id}", f"{PREFIX}inv:{user_id}"],
            args=[started_ms, value, TVA_CACHE_SECONDS],
        )
        self._fence()

    def blocklist(self, jti: str, expires_at: int) -> None:
        self.redis.set(f"{PREFIX}bl:{jti}", "1", exat=max(expires_at, int(time.time()) + 1))
        self._fence()

    def invalidate_user(self, user_id: str) -> int:
        """The users service changed something that ends the user's sessions: drop the
        cached tokens_valid_after and every refresh family of the user, and remember
        when, so a login whose check began before cannot open a session after."""
        removed = self._invalidate(
            keys=[f"{PREFIX}inv:{user_id}", f"{PREFIX}tva:{user_id}", f"{PREFIX}us:{user_id}"],
            args=[now_ms(), INVALIDATION_MEMORY_SECONDS, f"{PREFIX}sess:"],
        )
        self._fence()
        return int(removed)

    def _fence(self) -> None:
        """Return only once Redis has sent every other worker the invalidation pushes of
        the write just made, so the tracked copies cannot answer a later request with
        the old value. Redis flushes a command's reply and the pushes it caused in the
        same event-loop pass, but in no set order; a command it answers after that reply
        arrived is processed in a later pass, after both were written."""
        if self._tracked is not None:
            self.redis.ping()

    # -- sessions -------------------------------------------------------------------------

    def create_session(
        self,
        *,
        user_id: str,
        role: str,
        amr: list[str],
        refresh_jti: str,
        ip: str,
        user_agent: str,
        idle_seconds: int,
        absolute_seconds: int,
        started_ms: int,
    ) -> tuple[str, int]:
        """A new family; returns its id and absolute end (ms).

        ``started_ms`` is when the login's password check began. Raises
        CredentialsChanged if the user's sessions were invalidated since: checked in
        the same script as the write, so the session is either refused or written
        before the invalidation (which then deletes it)."""
        sid = secrets.token_urlsafe(16)
        now = now_ms()
        absolute = now + absolute_seconds * 1000
        fields: dict[str, str | int] = {
            "uid": user_id,
            "role": role,
            "amr": " ".join(amr),
            "cur": refresh_jti,
            "created": now,
            "used": now,
            "ip": ip,
            "ua": user_agent[:USER_AGENT_MAX],
            "abs": absolute,
        }
        members_key = f"{PREFIX}us:{user_id}"
        created = self._create_session(
            keys=[f"{PREFIX}sess:{sid}", members_key, f"{PREFIX}inv:{user_id}"],
            args=[
                started_ms,
                min(idle_seconds, absolute_seconds) * 1000,
                absolute_seconds,
                sid,
                *[item for pair in fields.items() for item in pair],
            ],
        )
        if not created:
            raise CredentialsChanged()
        return sid, absolute

    def rotate(
        self,
        *,
        session_id: str,
        user_id: str,
        presented_jti: str,
        new_jti: str,
        idle_seconds: int,
        ip: str,
        user_agent: str,
    ) -> Rotation:
        """Compare-and-set of the family's current refresh token, atomically."""
        result: list[Any] = self._rotate(
            keys=[f"{PREFIX}sess:{session_id}", f"{PREFIX}us:{user_id}"],
            args=[
                presented_jti,
                new_jti,
                now_ms(),
                idle_seconds * 1000,
                ip,
                session_id,
                user_agent[:USER_AGENT_MAX],
            ],
        )
        status = int(result[0])
        if status == -1:
            self._fence()  # the whole family was just revoked
            return Rotation("reuse")
        if status == 0:
            return Rotation("gone")
        return Rotation("ok", str(result[1]), tuple(str(result[2]).split()), int(result[3]))

    def revoke_session(self, session_id: str, user_id: str) -> bool:
        """Only the owner's own session; returns whether one was revoked."""
        revoked = self._revoke_own(
            keys=[f"{PREFIX}sess:{session_id}", f"{PREFIX}us:{user_id}"],
            args=[user_id, session_id],
        )
        self._fence()
        return bool(revoked)

    def sessions(self, user_id: str) -> list[dict[str, Any]]:
        members_key = f"{PREFIX}us:{user_id}"
        members: set[str] = self.redis.smembers(members_key)  # type: ignore[assignment]
        ids = sorted(members)
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for sid in ids:
            pipe.hgetall(f"{PREFIX}sess:{sid}")
        found = []
        gone = []
        for sid, data in zip(ids, pipe.execute(), strict=True):
            if not data:
                gone.append(sid)
                continue
            found.append({"id": sid, **data})
        if gone:
            self.redis.srem(members_key, *gone)
        return sorted(found, key=lambda s: int(s["created"]))

    # -- MFA-pending tokens ---------------------------------------------------------------

    def create_mfa_token(self, user_id: str, account: str, started_ms: int) -> str:
        """``started_ms`` is when the password check began: a password reset or change
        after it (a newer ``tokens_valid_after``) makes the token worthless."""
        token = secrets.token_urlsafe(32)
        key = f"{PREFIX}mfa:{digest(token)}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"uid": user_id, "acct": account, "n": 0, "started": started_ms})
        pipe.expire(key, MFA_TOKEN_SECONDS)
        pipe.execute()
        return token

    def mfa_attempt(self, token: str) -> MfaAttempt | None:
        """Count one code attempt; None when the token is unknown, used, expired or spent."""
        result = self._mfa_attempt(keys=[f"{PREFIX}mfa:{digest(token)}"], args=[MFA_MAX_ATTEMPTS])
        if not result:
            return None
        # A token written before "started" existed counts as begun at 0: refused by any
        # tokens_valid_after, so it fails closed.
        return MfaAttempt(str(result[0]), str(result[1]), int(result[2]), int(result[3] or 0))

    def consume_mfa_token(self, token: str) -> bool:
        """Single use: of concurrent winners, exactly one gets True."""
        return bool(self.redis.delete(f"{PREFIX}mfa:{digest(token)}"))

    # -- per-account back-off -------------------------------------------------------------

    def begin_attempt(self, account: str) -> int:
        """Admit one password check, or 0 while the account is backed off.

        The attempt counts as a failure up front and, from the threshold on, sets the
        lock for the wait a failure would earn — in one script, so of any number of
        parallel attempts only as many pass as sequential ones would (a check-then-count
        sequence lets every request that arrives while the lock is absent through)."""
        return int(self._failure(keys=self._failure_keys(account), args=self._failure_args("gate")))

    def refund_attempt(self, account: str, attempt: int) -> None:
        """Attempt number ``attempt`` (from :meth:`begin_attempt`) never reached a
        verdict (bad request, users service down): it neither counts nor locks."""
        self._refund(keys=self._failure_keys(account), args=[attempt])

    def record_failure(self, account: str) -> int:
        return int(self._failure(keys=self._failure_keys(account), args=self._failure_args("")))

    @staticmethod
    def _failure_keys(account: str) -> list[str]:
        return [f"{PREFIX}fail:{account}", f"{PREFIX}lock:{account}"]

    @staticmethod
    def _failure_args(mode: str) -> list[str | int]:
        return [FAILURE_MEMORY_SECONDS, BACKOFF_THRESHOLD, BACKOFF_CAP_SECONDS, mode]

    def clear_failures(self, account: str) -> None:
        self.redis.delete(f"{PREFIX}fail:{account}", f"{PREFIX}lock:{account}")
