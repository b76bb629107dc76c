"""Login attempts limited per account and per client address, so passwords cannot be guessed at speed.

Failures count, in fixed windows: after ``ACCOUNT_FAILURES`` wrong passwords for one account, or
``ADDRESS_FAILURES`` failed logins and sign-ups from one address, further attempts are refused (429 with
Retry-After) until the window ends, even with the right password (else the answer would tell a guesser when
they hit it). A successful login clears its account's count, so a user who mistypes now and then is never
locked out by their own successes. (A per-minute bucket would still let a guesser try 7,200 passwords a day
per account; a 15-minute window of 5 allows 480.) Counters live in Redis when EMBER_REDIS_URL is set, so every
replica shares them, else in this process; a Redis that fails falls back to in-process counts for a while,
like the gateway's rate limiter.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ember.config import Settings
from ember.errors import RateLimited

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

ACCOUNT_FAILURES = 5  # wrong passwords for one account per window
ADDRESS_FAILURES = 20  # wrong passwords from one client address per window (several accounts behind one NAT)
WINDOW = 15 * 60.0  # seconds
RETRY_REDIS_AFTER = 5.0
PRUNE_AT = 10_000  # in-process windows kept before finished ones are swept


class FailureCounter(Protocol):
    async def failures(self, key: str) -> tuple[int, float]:
        """Failures counted for ``key`` in its current window, and seconds until that window ends."""
        ...

    async def add_failure(self, key: str) -> None: ...

    async def clear(self, key: str) -> None: ...

    async def aclose(self) -> None: ...


@dataclass
class MemoryCounter:
    clock: Callable[[], float] = time.monotonic
    _windows: dict[str, tuple[int, float]] = field(default_factory=dict)  # key -> (failures, window end)
    _prune_at: int = PRUNE_AT

    async def failures(self, key: str) -> tuple[int, float]:
        return self.failures_now(key)

    def failures_now(self, key: str) -> tuple[int, float]:
        count, ends = self._windows.get(key, (0, 0.0))
        left = ends - self.clock()
        return (count, left) if left > 0 else (0, 0.0)

    async def add_failure(self, key: str) -> None:
        self.add_failure_now(key)

    def add_failure_now(self, key: str) -> None:
        count, left = self.failures_now(key)
        now = self.clock()
        self._windows[key] = (count + 1, now + left if count else now + WINDOW)
        if len(self._windows) > self._prune_at:  # forget finished windows: a spray of names cannot grow memory
            self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
            # Many live windows left: sweep again only once they have doubled, so adds stay cheap on average.
            self._prune_at = max(PRUNE_AT, 2 * len(self._windows))

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)

    async def aclose(self) -> None:
        self._windows.clear()


class RedisCounter:
    """INCR with an expiry set by the first failure of a window; shared by every replica on this Redis."""

    def __init__(self, client: Redis, *, prefix: str, timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.fallback = MemoryCounter(clock=clock)
        self._clock = clock
        self._down_until = -math.inf

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisCounter:
        from redis.asyncio import Redis

        client = Redis.from_url(settings.redis_url, socket_timeout=settings.redis_timeout,
                                socket_connect_timeout=settings.redis_timeout)
        return cls(client, prefix=settings.redis_prefix, timeout=settings.redis_timeout)

    def _key(self, key: str) -> str:
        return f"{self.prefix}login-failures:{key}"

    async def failures(self, key: str) -> tuple[int, float]:
        if self._clock() >= self._down_until:
            try:
                async with asyncio.timeout(self.timeout):
                    pipe = self.client.pipeline()
                    pipe.get(self._key(key))
                    pipe.pttl(self._key(key))
                    raw, ttl_ms = await pipe.execute()
                return (int(raw), max(0.0, ttl_ms / 1000)) if raw is not None and ttl_ms > 0 else (0, 0.0)
            except Exception as exc:  # Redis down or slow must not block logins: count in this process
                self._redis_failed(exc)
        return self.fallback.failures_now(key)

    async def add_failure(self, key: str) -> None:
        if self._clock() >= self._down_until:
            try:
                async with asyncio.timeout(self.timeout):
                    pipe = self.client.pipeline()
                    pipe.incr(self._key(key))
                    pipe.expire(self._key(key), int(WINDOW), nx=True)
                    await pipe.execute()
                return
            except Exception as exc:
                self._redis_failed(exc)
        self.fallback.add_failure_now(key)

    async def clear(self, key: str) -> None:
        await self.fallback.clear(key)
        try:
            async with asyncio.timeout(self.timeout):
                await self.client.delete(self._key(key))
        except Exception as exc:
            self._redis_failed(exc)

    def _redis_failed(self, exc: Exception) -> None:
        if self._clock() >= self._down_until:
            log.warning("Redis login limits failed (%s: %s); counting per replica for %gs",
                        type(exc).__name__, exc, RETRY_REDIS_AFTER)
        self._down_until = self._clock() + RETRY_REDIS_AFTER

    async def aclose(self) -> None:
        await self.client.aclose()


@dataclass
class LoginLimits:
    counter: FailureCounter = field(default_factory=MemoryCounter)

    async def check(self, account: str | None, address: str | None) -> None:
        """RateLimited when the account or the address has used up its failures for this window."""
        for key, limit, what in _subjects(account, address):
            count, left = await self.counter.failures(key)
            if count >= limit:
                wait = max(1, math.ceil(left))
                minutes = math.ceil(wait / 60)
                raise RateLimited(f"too many login attempts for {what}: try again in {minutes} minute"
                                  f"{'s' if minutes != 1 else ''}", limit="login", retry_after=wait,
                                  headers={"Retry-After": str(wait)})

    async def failed(self, account: str | None, address: str | None) -> None:
        """Count a wrong password (or a sign-up, against the address only) toward the limits."""
        for key, _, _ in _subjects(account, address):
            await self.counter.add_failure(key)

    async def succeeded(self, account: str) -> None:
        await self.counter.clear(f"account:{account.lower()}")

    async def aclose(self) -> None:
        await self.counter.aclose()


def _subjects(account: str | None, address: str | None) -> list[tuple[str, int, str]]:
    found = []
    if account:
        found.append((f"account:{account.lower()}", ACCOUNT_FAILURES, "this account"))
    if address:
        found.append((f"address:{address}", ADDRESS_FAILURES, "this address"))
    return found


def build_login_limits(settings: Settings) -> LoginLimits:
    """Shared through Redis when EMBER_REDIS_URL is set, else per process."""
    return LoginLimits(RedisCounter.from_settings(settings) if settings.redis_url else MemoryCounter())
