"""Rate limits per key: requests per minute, tokens per minute, concurrent requests.

Requests and tokens are token buckets that refill evenly over a minute: a bucket holds up to the limit, one
request takes one unit from the requests bucket, and the tokens bucket is charged after the request with the
prompt + generated counts the engine reported (it may go below zero; no new request is admitted until it has
refilled to at least one token). Concurrency counts requests between ``admit`` and ``Admission.finish``.

``MemoryLimiter`` keeps the buckets in this process. ``RedisLimiter`` keeps them in Redis and decides in one Lua
script per call, on Redis's clock, so any number of web replicas share one limit. A Redis that is down or slow
never holds up a request: every call is bounded by EMBER_REDIS_TIMEOUT, and on failure the limiter falls back to
its own in-memory buckets (per replica) for ``RETRY_REDIS_AFTER`` seconds before it tries Redis again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from ember.config import Settings, parse_limits
from ember.errors import RateLimited

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ember.db.keys import ApiKey

log = logging.getLogger(__name__)

WINDOW = 60.0  # seconds in which an empty bucket refills completely
RETRY_REDIS_AFTER = 5.0  # after a Redis failure, use the in-memory buckets this long before trying Redis again
CONCURRENCY_RETRY_AFTER = 1  # seconds; nobody knows when a running request will end


@dataclass(frozen=True)
class Quota:
    """Limits for one subject; None = unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "concurrency"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"quota {name} must be a positive integer or None, got {value!r}")

    @property
    def unlimited(self) -> bool:
        return self.rpm is None and self.tpm is None and self.concurrency is None


def quota_for(key: ApiKey | None, role: str, settings: Settings) -> Quota:
    """The key's own limits where it has them, else the defaults of ``role`` (admin, user or anonymous)."""
    defaults = _parsed_limits(_role_limits(role, settings))
    return Quota(
        rpm=(key.rpm if key is not None and key.rpm is not None else defaults.get("rpm")),
        tpm=(key.tpm if key is not None and key.tpm is not None else defaults.get("tpm")),
        concurrency=(key.concurrency if key is not None and key.concurrency is not None
                     else defaults.get("concurrency")),
    )


@lru_cache(maxsize=32)
def _parsed_limits(text: str) -> dict[str, int]:
    """Role defaults are parsed once per distinct text, not on every request (callers only read the dict)."""
    return parse_limits(text, "role limits")


def _role_limits(role: str, settings: Settings) -> str:
    if role == "admin":
        return settings.limits_admin
    if role == "anonymous":
        return settings.limits_anonymous
    return settings.limits_user


class Admission:
    """A request that was let in. ``finish`` releases its concurrency slot and charges its tokens, once."""

    def __init__(self, headers: dict[str, str], release: Callable[[int], Awaitable[None]] | None = None) -> None:
        self.headers = headers
        self._release = release
        self._finished = False

    async def finish(self, tokens: int) -> None:
        if self._finished:
            return
        self._finished = True
        if self._release is not None:
            # Shielded: a request cancelled (its client went away) while giving its slot back still gives it back.
            await asyncio.shield(self._release(max(0, int(tokens))))


class Limiter(Protocol):
    async def admit(self, subject: str, quota: Quota) -> Admission:
        """Let the request in (and take its share) or raise RateLimited; nothing is taken when refused."""
        ...

    async def aclose(self) -> None: ...


def build_limiter(settings: Settings) -> Limiter:
    """Redis-backed when EMBER_REDIS_URL is set (replicas share limits), else in this process."""
    if settings.redis_url:
        return RedisLimiter.from_settings(settings)
    return MemoryLimiter()


# -- decisions and headers, shared by both limiters ---------------------------------------------------------


def refilled(level: float, limit: int, elapsed: float) -> float:
    return min(float(limit), level + max(0.0, elapsed) * limit / WINDOW)


def seconds_to(level: float, target: float, limit: int) -> float:
    """How long a bucket at ``level`` takes to refill to ``target``."""
    return max(0.0, (target - level) * WINDOW / limit)


def rate_headers(quota: Quota, requests_level: float, tokens_level: float) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers for the limits that exist (levels after this request's share)."""
    headers: dict[str, str] = {}
    for kind, limit, level in (("requests", quota.rpm, requests_level), ("tokens", quota.tpm, tokens_level)):
        if limit is None:
            continue
        headers[f"x-ratelimit-limit-{kind}"] = str(limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(level)))
        headers[f"x-ratelimit-reset-{kind}"] = format_reset(seconds_to(level, limit, limit))
    return headers


def format_reset(seconds: float) -> str:
    """Durations as OpenAI writes them in reset headers: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 1000) / 1000:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def refusal(kind: str, quota: Quota, requests_level: float, tokens_level: float) -> RateLimited:
    if kind == "concurrency":
        wait = float(CONCURRENCY_RETRY_AFTER)
        message = f"too many concurrent requests (limit {quota.concurrency}); retry when one has finished"
    elif kind == "requests":
        assert quota.rpm is not None
        wait = seconds_to(requests_level, 1, quota.rpm)
        message = f"rate limit reached: {quota.rpm} requests per minute"
    else:
        assert quota.tpm is not None
        wait = seconds_to(tokens_level, 1, quota.tpm)
        message = f"rate limit reached: {quota.tpm} tokens per minute"
    retry_after = max(1, math.ceil(wait))
    headers = {**rate_headers(quota, requests_level, tokens_level), "Retry-After": str(retry_after)}
    return RateLimited(f"{message}; retry after {retry_after}s", limit=kind, retry_after=wait, headers=headers)


# -- in memory --------------------------------------------------------------------------------------------------


@dataclass
class _Bucket:
    level: float
    at: float

    def now(self, limit: int, clock: float) -> float:
        return refilled(self.level, limit, clock - self.at)


@dataclass
class _Subject:
    requests: _Bucket | None = None
    tokens: _Bucket | None = None
    active: int = 0
    full_at: float = -math.inf  # from then on both buckets are full again: forgetting the subject changes nothing

    def refills_by(self, moment: float) -> None:
        self.full_at = max(self.full_at, moment)


@dataclass
class MemoryLimiter:
    """Buckets in this process. ``admit`` never awaits between check and take, so it is atomic on the loop."""

    clock: Callable[[], float] = time.monotonic
    prune_every: int = 1024  # admissions between sweeps of idle, refilled subjects (keeps memory bounded)
    _subjects: dict[str, _Subject] = field(default_factory=dict)
    _admitted: int = 0

    async def admit(self, subject: str, quota: Quota) -> Admission:
        return self.admit_now(subject, quota)

    def admit_now(self, subject: str, quota: Quota) -> Admission:
        if quota.unlimited:
            return Admission({})
        now = self.clock()
        state = self._subjects.setdefault(subject, _Subject())
        requests = self._level(state.requests, quota.rpm, now)
        tokens = self._level(state.tokens, quota.tpm, now)
        if quota.concurrency is not None and state.active >= quota.concurrency:
            raise refusal("concurrency", quota, requests, tokens)
        if quota.rpm is not None and requests < 1:
            raise refusal("requests", quota, requests, tokens)
        if quota.tpm is not None and tokens < 1:
            raise refusal("tokens", quota, requests, tokens)
        if quota.rpm is not None:
            requests -= 1
            state.requests = _Bucket(requests, now)
            state.refills_by(now + seconds_to(requests, quota.rpm, quota.rpm))
        state.active += 1
        self._admitted += 1
        if self._admitted % self.prune_every == 0:
            self._prune(now)
        return Admission(rate_headers(quota, requests, tokens), lambda used: self._release(subject, quota, used))

    @staticmethod
    def _level(bucket: _Bucket | None, limit: int | None, now: float) -> float:
        if limit is None:
            return math.inf
        return float(limit) if bucket is None else bucket.now(limit, now)

    async def _release(self, subject: str, quota: Quota, tokens: int) -> None:
        self.release_now(subject, quota, tokens)

    def release_now(self, subject: str, quota: Quota, tokens: int) -> None:
        state = self._subjects.setdefault(subject, _Subject())
        state.active = max(0, state.active - 1)
        if quota.tpm is not None and tokens:
            now = self.clock()
            level = self._level(state.tokens, quota.tpm, now) - tokens
            state.tokens = _Bucket(level, now)
            state.refills_by(now + seconds_to(level, quota.tpm, quota.tpm))

    def _prune(self, now: float) -> None:
        idle = [name for name, state in self._subjects.items() if state.active == 0 and state.full_at <= now]
        for name in idle:
            del self._subjects[name]

    @property
    def subjects(self) -> int:
        """How many subjects are remembered (for tests of the pruning)."""
        return len(self._subjects)

    async def aclose(self) -> None:
        self._subjects.clear()


# -- in Redis ---------------------------------------------------------------------------------------------------

# Both scripts read Redis's own clock (TIME), so replicas with skewed clocks still share one bucket. A bucket is
# a pair of hash fields (level, time of that level); the concurrency set holds request ids scored by the time
# their slot lapses, so a replica that dies mid-request leaks its slots only until then.
_BUCKET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function level(name, limit)
  if limit <= 0 then return -1 end
  local v = redis.call('HMGET', KEYS[1], name .. '_level', name .. '_at')
  local lvl, at = tonumber(v[1]), tonumber(v[2])
  if not lvl then return limit end
  return math.min(limit, lvl + math.max(0, now - at) * limit / 60)
end
local function keep(rpm, req, tpm, tok)
  local ttl = 1
  if rpm > 0 then ttl = math.max(ttl, (rpm - req) * 60 / rpm) end
  if tpm > 0 then ttl = math.max(ttl, (tpm - tok) * 60 / tpm) end
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000) + 1000)
end
"""

_ADMIT_LUA = _BUCKET_LUA + """
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local req, tok = level('req', rpm), level('tok', tpm)
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= conc then
    return {'concurrency', tostring(req), tostring(tok)}
  end
end
if rpm > 0 and req < 1 then return {'requests', tostring(req), tostring(tok)} end
if tpm > 0 and tok < 1 then return {'tokens', tostring(req), tostring(tok)} end
if rpm > 0 then
  req = req - 1
  redis.call('HSET', KEYS[1], 'req_level', tostring(req), 'req_at', tostring(now))
  keep(rpm, req, tpm, tok)
end
if conc > 0 then
  local lease = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], now + lease, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], math.ceil(lease * 1000) + 1000)
end
return {'ok', tostring(req), tostring(tok)}
"""

_FINISH_LUA = _BUCKET_LUA + """
local rpm, tpm, used = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[4])
if tpm > 0 and used > 0 then
  local tok = level('tok', tpm) - used
  redis.call('HSET', KEYS[1], 'tok_level', tostring(tok), 'tok_at', tostring(now))
  keep(rpm, level('req', rpm), tpm, tok)
end
return 1
"""


class RedisLimiter:
    """Buckets in Redis, shared by every replica that uses the same Redis and key prefix."""

    def __init__(self, client: Redis, *, prefix: str = "ember:", timeout: float = 0.25, lease: float = 660.0,
                 fallback: MemoryLimiter | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.lease = lease
        self.fallback = fallback or MemoryLimiter(clock=clock)
        self._clock = clock
        self._admit_script = client.register_script(_ADMIT_LUA)
        self._finish_script = client.register_script(_FINISH_LUA)
        self._redis_down_until = -math.inf

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisLimiter:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No retries inside redis-py: EMBER_REDIS_TIMEOUT is the whole budget of a call.
        client = Redis.from_url(settings.redis_url, socket_timeout=settings.redis_timeout,
                                socket_connect_timeout=settings.redis_timeout, retry=Retry(NoBackoff(), 0))
        # A slot lapses after the longest a request may take (the engines' deadline) plus a margin.
        return cls(client, prefix=settings.redis_prefix, timeout=settings.redis_timeout,
                   lease=settings.request_timeout + 60.0)

    @property
    def degraded(self) -> bool:
        """True while Redis is skipped after a failure and limits are per replica."""
        return self._clock() < self._redis_down_until

    def _keys(self, subject: str) -> list[str]:
        base = f"{self.prefix}ratelimit:{subject}"
        return [base, base + ":active"]

    async def admit(self, subject: str, quota: Quota) -> Admission:
        if quota.unlimited:
            return Admission({})
        if self.degraded:
            return self.fallback.admit_now(subject, quota)
        request_id = uuid.uuid4().hex
        args = [quota.rpm or 0, quota.tpm or 0, quota.concurrency or 0, request_id, self.lease]
        reply = await self._call(self._admit_script, self._keys(subject), args)
        if reply is None:
            return self.fallback.admit_now(subject, quota)
        outcome, requests, tokens = (_text(x) for x in reply)
        requests_level = math.inf if quota.rpm is None else float(requests)
        tokens_level = math.inf if quota.tpm is None else float(tokens)
        if outcome != "ok":
            raise refusal(outcome, quota, requests_level, tokens_level)

        async def release(used: int) -> None:
            args = [quota.rpm or 0, quota.tpm or 0, used, request_id]
            if await self._call(self._finish_script, self._keys(subject), args) is None:
                log.warning("could not release a rate-limit slot in Redis; it lapses after %.0fs", self.lease)

        return Admission(rate_headers(quota, requests_level, tokens_level), release)

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a script within the timeout; None (and fall back for a while) if Redis fails or is slow."""
        try:
            async with asyncio.timeout(self.timeout):
                return await script(keys=keys, args=args)
        except Exception as exc:  # any failure of Redis (down, slow, refused, script error) must not fail requests
            if not self.degraded:
                log.warning("Redis rate limiting failed (%s: %s); using per-replica limits for %gs",
                            type(exc).__name__, exc, RETRY_REDIS_AFTER)
            self._redis_down_until = self._clock() + RETRY_REDIS_AFTER
            return None

    async def aclose(self) -> None:
        await self.client.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
