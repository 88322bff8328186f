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
    mfa:<hash>   hash  uid acct n(attempts) started(ms, before the password check) TTL 5 min
    fail:<acct>  int   consecutive password checks without a login (counted up front) TTL 1 day
    lock:<acct>  "1"   back-off in force                                       TTL 2^(n-5) s
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

from users.domain import canonical_identifier

log = logging.getLogger(__name__)

PREFIX = "gw:"
MFA_TOKEN_SECONDS = 300
MFA_MAX_ATTEMPTS = 5
TVA_CACHE_SECONDS = 60
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


def account_key(identifier: str) -> str:
    """Failure counters are keyed on the identifier in the users service's own canonical
    form, hashed: every spelling of one identifier (case, full-width NFKC variants)
    shares one counter, and unknown accounts back off exactly like real ones.

    An account's username and its email are two identifiers with two counters: the
    gateway cannot tell they are one account, because a failed check answers 401
    without a user id. So an account gets up to twice the guesses before back-off."""
    kind, key = canonical_identifier(identifier)
    return digest(f"{kind}:{key}")[:32]


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
  redis.call('SET', KEYS[2], '1', 'EX', math.max(1, math.floor(wait)))
end
return n
"""

_REFUND = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
"""

_REVOKE_OWN = """
if redis.call('HGET', KEYS[1], 'uid') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"""


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
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._rotate = client.register_script(_ROTATE)
        self._mfa_attempt = client.register_script(_MFA_ATTEMPT)
        self._failure = client.register_script(_FAILURE)
        self._revoke_own = client.register_script(_REVOKE_OWN)
        self._refund = client.register_script(_REFUND)

    # -- per-request check (one round trip) ------------------------------------------------

    def token_status(self, jti: str, user_id: str, session_id: str) -> TokenStatus:
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(f"{PREFIX}bl:{jti}")
        pipe.get(f"{PREFIX}tva:{user_id}")
        pipe.exists(f"{PREFIX}sess:{session_id}")
        blocked, tva, alive = pipe.execute()
        value: int | str | None = None
        if tva is not None:
            value = DELETED if tva == DELETED else int(tva)
        return TokenStatus(bool(blocked), bool(alive), value)

    def cache_tokens_valid_after(self, user_id: str, value: int | str) -> None:
        self.redis.set(f"{PREFIX}tva:{user_id}", value, ex=TVA_CACHE_SECONDS)

    def blocklist(self, jti: str, expires_at: int) -> None:
        self.redis.set(f"{PREFIX}bl:{jti}", "1", exat=max(expires_at, int(time.time()) + 1))

    def invalidate_user(self, user_id: str) -> int:
        """The users service changed something that ends the user's sessions: drop the
        cached tokens_valid_after and every refresh family of the user."""
        members_key = f"{PREFIX}us:{user_id}"
        sessions: set[str] = self.redis.smembers(members_key)  # type: ignore[assignment]
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(f"{PREFIX}tva:{user_id}")
        for sid in sessions:
            pipe.delete(f"{PREFIX}sess:{sid}")
        pipe.delete(members_key)
        pipe.execute()
        return len(sessions)

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
    ) -> tuple[str, int]:
        """A new family; returns its id and absolute end (ms)."""
        sid = secrets.token_urlsafe(16)
        now = now_ms()
        absolute = now + absolute_seconds * 1000
        key = f"{PREFIX}sess:{sid}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            key,
            mapping={
                "uid": user_id,
                "role": role,
                "amr": " ".join(amr),
                "cur": refresh_jti,
                "created": now,
                "used": now,
                "ip": ip,
                "ua": user_agent[:USER_AGENT_MAX],
                "abs": absolute,
            },
        )
        pipe.pexpire(key, min(idle_seconds, absolute_seconds) * 1000)
        pipe.sadd(f"{PREFIX}us:{user_id}", sid)
        pipe.expire(f"{PREFIX}us:{user_id}", absolute_seconds)
        pipe.execute()
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

    def refund_attempt(self, account: str) -> None:
        """The attempt never reached a verdict (bad request, users service down)."""
        self._refund(keys=[f"{PREFIX}fail:{account}"])

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
