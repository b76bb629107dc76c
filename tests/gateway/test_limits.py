"""Rate limits: the same behaviour from the in-memory limiter and the Redis one (the machine's real Redis, a
unique key prefix per test), two Redis limiters acting as two web replicas sharing one limit, and Redis
outages (down, or accepting connections but never answering) that must not hold a request up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from ember.config import Settings, parse_limits
from ember.db.keys import ApiKey
from ember.errors import RateLimited
from ember.gateway.limits import (
    RETRY_REDIS_AFTER,
    Admission,
    Limiter,
    MemoryLimiter,
    Quota,
    RedisLimiter,
    build_limiter,
    format_reset,
    quota_for,
)
from tests.gateway.conftest import REDIS_URL
from tests.server_harness import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def replicas(redis_prefix: str) -> AsyncIterator[Callable[[], Limiter]]:
    """Makes Redis limiters as two web replicas would build them: same settings, separate clients."""
    made: list[Limiter] = []

    def make() -> Limiter:
        limiter = build_limiter(Settings(redis_url=REDIS_URL, redis_prefix=redis_prefix, redis_timeout=2.0))
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest, replicas: Callable[[], Limiter]) -> Limiter:
    return MemoryLimiter() if request.param == "memory" else replicas()


async def refused(admit: Awaitable[Admission]) -> RateLimited:
    with pytest.raises(RateLimited) as caught:
        await admit
    return caught.value


# -- behaviour both limiters share ---------------------------------------------------------------------------


async def test_request_over_rpm_is_refused_with_retry_after_and_headers(limiter: Limiter) -> None:
    quota = Quota(rpm=3)
    remaining = [(await limiter.admit("k", quota)).headers["x-ratelimit-remaining-requests"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    error = await refused(limiter.admit("k", quota))
    assert error.status == 429 and error.limit == "requests" and error.kind == "requests"
    assert 1 <= int(error.headers["Retry-After"]) <= 20  # one request refills in 60/3 = 20 s
    assert error.headers["x-ratelimit-limit-requests"] == "3"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.headers["x-ratelimit-reset-requests"].endswith("s")
    assert "3 requests per minute" in error.message


async def test_tokens_are_charged_after_the_request_from_its_final_count(limiter: Limiter) -> None:
    quota = Quota(tpm=100)
    first = await limiter.admit("k", quota)
    assert first.headers["x-ratelimit-remaining-tokens"] == "100"  # nothing is known before the answer
    await first.finish(150)  # prompt + generated: more than a minute's worth
    error = await refused(limiter.admit("k", quota))
    assert error.limit == "tokens"
    assert error.headers["x-ratelimit-remaining-tokens"] == "0"
    # 51 tokens to refill at 100 per minute before one is available again
    assert 29 <= int(error.headers["Retry-After"]) <= 31


async def test_concurrency_counts_requests_until_they_finish(limiter: Limiter) -> None:
    quota = Quota(concurrency=1)
    first = await limiter.admit("k", quota)
    error = await refused(limiter.admit("k", quota))
    assert error.limit == "concurrency" and error.headers["Retry-After"] == "1"
    await first.finish(0)
    second = await limiter.admit("k", quota)
    await second.finish(0)


async def test_finish_is_idempotent(limiter: Limiter) -> None:
    quota = Quota(tpm=100, concurrency=2)
    first, second = await limiter.admit("k", quota), await limiter.admit("k", quota)
    await first.finish(30)
    await first.finish(30)  # a second call must neither free another slot nor charge again
    third = await limiter.admit("k", quota)
    assert third.headers["x-ratelimit-remaining-tokens"] in ("70", "71")  # 30 charged once (plus refill)
    assert (await refused(limiter.admit("k", quota))).limit == "concurrency"
    for admission in (second, third):
        await admission.finish(0)


async def test_a_refused_request_takes_nothing(limiter: Limiter) -> None:
    quota = Quota(rpm=2, concurrency=1)
    first = await limiter.admit("k", quota)
    for _ in range(3):
        assert (await refused(limiter.admit("k", quota))).limit == "concurrency"
    await first.finish(0)
    second = await limiter.admit("k", quota)
    assert second.headers["x-ratelimit-remaining-requests"] == "0"  # the refusals used no request


async def test_subjects_have_separate_limits_and_no_quota_means_no_limit(limiter: Limiter) -> None:
    await limiter.admit("a", Quota(rpm=1))
    await refused(limiter.admit("a", Quota(rpm=1)))
    await limiter.admit("b", Quota(rpm=1))
    for _ in range(50):
        admission = await limiter.admit("a", Quota())
        assert admission.headers == {}
        await admission.finish(10_000)


async def test_a_smaller_limit_applies_at_once(limiter: Limiter) -> None:
    for _ in range(3):
        await limiter.admit("k", Quota(rpm=100))
    admission = await limiter.admit("k", Quota(rpm=2))  # the key was edited: the bucket holds at most 2
    assert admission.headers["x-ratelimit-remaining-requests"] == "1"


# -- the window ------------------------------------------------------------------------------------------------


async def test_memory_bucket_refills_evenly_over_the_minute() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock=clock)
    quota = Quota(rpm=6)
    for _ in range(6):
        await limiter.admit("k", quota)
    error = await refused(limiter.admit("k", quota))
    assert error.headers["Retry-After"] == "10" and error.headers["x-ratelimit-reset-requests"] == "1m0s"
    clock.now += 9.9
    await refused(limiter.admit("k", quota))
    clock.now += 0.2
    admitted = await limiter.admit("k", quota)
    assert admitted.headers["x-ratelimit-remaining-requests"] == "0"
    clock.now += 120
    assert (await limiter.admit("k", quota)).headers["x-ratelimit-remaining-requests"] == "5"  # full, not more


async def test_memory_limiter_forgets_idle_refilled_subjects_only() -> None:
    clock = Clock()
    limiter = MemoryLimiter(clock=clock, prune_every=10)
    running = await limiter.admit("busy", Quota(concurrency=5))
    owing = await limiter.admit("owing", Quota(tpm=60))
    await owing.finish(600)  # ten minutes of tokens owed
    for index in range(7):
        await (await limiter.admit(f"client-{index}", Quota(rpm=60))).finish(0)
    clock.now += 61  # the rpm buckets are full again; the tokens are still owed; "busy" is still running
    await limiter.admit("late", Quota(rpm=60))  # the 10th admission sweeps
    assert limiter.subjects == 3  # busy, owing, late
    assert (await refused(limiter.admit("owing", Quota(tpm=60)))).limit == "tokens"
    await running.finish(0)


async def test_redis_bucket_refills_on_redis_time(replicas: Callable[[], Limiter]) -> None:
    limiter = replicas()
    quota = Quota(rpm=60)  # one request per second
    for _ in range(60):
        await limiter.admit("k", quota)
    error = await refused(limiter.admit("k", quota))
    assert error.headers["Retry-After"] == "1"
    await asyncio.sleep(1.1)
    await limiter.admit("k", quota)
    await refused(limiter.admit("k", quota))


# -- two replicas, one Redis -----------------------------------------------------------------------------------


async def test_two_replicas_share_one_request_limit(replicas: Callable[[], Limiter]) -> None:
    first, second = replicas(), replicas()
    quota = Quota(rpm=4)
    outcomes = []
    for replica in (first, second) * 4:
        try:
            await replica.admit("key:1", quota)
            outcomes.append("ok")
        except RateLimited:
            outcomes.append("429")
    assert outcomes == ["ok"] * 4 + ["429"] * 4


async def test_two_replicas_share_concurrency_and_tokens(replicas: Callable[[], Limiter]) -> None:
    first, second = replicas(), replicas()
    running = await first.admit("key:1", Quota(concurrency=1))
    assert (await refused(second.admit("key:1", Quota(concurrency=1)))).limit == "concurrency"
    await running.finish(0)
    await (await second.admit("key:1", Quota(concurrency=1))).finish(0)

    charged = await first.admit("key:2", Quota(tpm=50))
    await charged.finish(80)
    assert (await refused(second.admit("key:2", Quota(tpm=50)))).limit == "tokens"


async def test_a_burst_across_replicas_admits_exactly_the_limit(replicas: Callable[[], Limiter]) -> None:
    limiters = [replicas(), replicas()]
    quota = Quota(rpm=7)

    async def one(index: int) -> bool:
        try:
            await limiters[index % 2].admit("key:burst", quota)
            return True
        except RateLimited:
            return False

    results = await asyncio.gather(*(one(i) for i in range(30)))
    assert sum(results) == 7  # the check and the take are one atomic script


# -- Redis outages ---------------------------------------------------------------------------------------------


class FlakyRedis:
    """A TCP proxy in front of the real Redis that can be switched to refuse or to swallow requests."""

    def __init__(self) -> None:
        self.mode = "up"
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "down":
            writer.close()
            return
        if self.mode == "silent":  # accepts and reads, never answers: the case that would hang a request
            with contextlib.suppress(Exception):
                while await reader.read(65536):
                    pass
            writer.close()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", 6379)
        pumps = [asyncio.create_task(self._pump(reader, upstream_writer)),
                 asyncio.create_task(self._pump(upstream_reader, writer))]
        self.tasks.update(pumps)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        writer.close()
        upstream_writer.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self.mode != "up":
                return  # drop the connection, as a Redis going away would
            writer.write(data)
            await writer.drain()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def flaky() -> AsyncIterator[FlakyRedis]:
    proxy = FlakyRedis()
    await proxy.start()
    yield proxy
    await proxy.stop()


def flaky_limiter(proxy: FlakyRedis, redis_prefix: str, clock: Clock) -> RedisLimiter:
    settings = Settings(redis_url=proxy.url, redis_prefix=redis_prefix, redis_timeout=0.3)
    built = RedisLimiter.from_settings(settings)
    return RedisLimiter(built.client, prefix=redis_prefix, timeout=settings.redis_timeout, clock=clock)


@pytest.mark.parametrize("mode", ["down", "silent"])
async def test_redis_outage_falls_back_to_per_replica_limits_within_the_timeout(
        flaky: FlakyRedis, redis_prefix: str, mode: str) -> None:
    clock = Clock()
    limiter = flaky_limiter(flaky, redis_prefix, clock)
    flaky.mode = mode
    quota = Quota(rpm=2, concurrency=5)
    started = time.monotonic()
    await limiter.admit("k", quota)
    assert time.monotonic() - started < 0.3 + 0.7  # the timeout plus scheduling slack on a busy machine
    assert limiter.degraded
    started = time.monotonic()
    await limiter.admit("k", quota)  # while degraded Redis is not asked at all
    assert time.monotonic() - started < 0.05
    assert (await refused(limiter.admit("k", quota))).limit == "requests"  # still limited, in this replica
    await limiter.aclose()


async def test_redis_is_used_again_after_the_outage(flaky: FlakyRedis, redis_prefix: str) -> None:
    clock = Clock()
    limiter = flaky_limiter(flaky, redis_prefix, clock)
    other = build_limiter(Settings(redis_url=REDIS_URL, redis_prefix=redis_prefix))
    quota = Quota(rpm=3)
    flaky.mode = "down"
    await limiter.admit("k", quota)
    assert limiter.degraded
    flaky.mode = "up"
    clock.now += RETRY_REDIS_AFTER + 0.1
    await limiter.admit("k", quota)  # back on Redis: shared with the other replica again
    assert not limiter.degraded
    await other.admit("k", quota)
    await other.admit("k", quota)
    assert (await refused(other.admit("k", quota))).limit == "requests"
    await limiter.aclose()
    await other.aclose()


async def test_finish_during_an_outage_returns_promptly(flaky: FlakyRedis, redis_prefix: str) -> None:
    limiter = flaky_limiter(flaky, redis_prefix, Clock())
    admission = await limiter.admit("k", Quota(concurrency=1, tpm=100))
    flaky.mode = "silent"
    started = time.monotonic()
    await admission.finish(10)  # the slot lapses on its own later; the response must not wait for Redis
    assert time.monotonic() - started < 1.0
    await limiter.aclose()


# -- quotas from keys and roles --------------------------------------------------------------------------------


def api_key(**limits: Any) -> ApiKey:
    values: dict[str, Any] = {"rpm": None, "tpm": None, "concurrency": None, **limits}
    return ApiKey(id=1, name="k", hint="ember_sk_abcd...", user_name="u", user_role="user", user_disabled=False,
                  scopes=frozenset({"chat"}), models=None, created_at=datetime.now(UTC), expires_at=None,
                  revoked_at=None, **values)


def test_quota_takes_the_keys_own_limits_over_the_roles_defaults() -> None:
    settings = Settings(limits_user="rpm=10,tpm=1000,concurrency=2", limits_admin="", limits_anonymous="rpm=5")
    assert quota_for(api_key(rpm=99), "user", settings) == Quota(rpm=99, tpm=1000, concurrency=2)
    assert quota_for(api_key(), "user", settings) == Quota(rpm=10, tpm=1000, concurrency=2)
    assert quota_for(api_key(), "admin", settings) == Quota()
    assert quota_for(api_key(tpm=7), "admin", settings) == Quota(tpm=7)
    assert quota_for(None, "anonymous", settings) == Quota(rpm=5)


def test_role_limit_settings_are_parsed_and_bad_ones_refused_at_start() -> None:
    settings = Settings.from_env({"EMBER_LIMITS_USER": "tpm=500, concurrency=3", "EMBER_LIMITS_ADMIN": "none",
                                  "EMBER_LIMITS_ANONYMOUS": ""})
    assert quota_for(None, "user", settings) == Quota(tpm=500, concurrency=3)
    assert quota_for(None, "admin", settings) == Quota()
    assert quota_for(None, "anonymous", settings) == Quota()
    for bad in ("rpm=0", "rpm=-1", "rpm", "speed=3", "rpm=1.5"):
        with pytest.raises(ValueError, match="EMBER_LIMITS_USER"):
            Settings.from_env({"EMBER_LIMITS_USER": bad})
    assert parse_limits("RPM=1".lower()) == {"rpm": 1}


def test_defaults_limit_users_and_leave_admins_alone() -> None:
    settings = Settings()
    assert quota_for(None, "admin", settings).unlimited
    user = quota_for(None, "user", settings)
    assert user.rpm and user.concurrency


def test_reset_durations_are_written_as_openai_does() -> None:
    assert [format_reset(s) for s in (0, 0.0201, 1, 1.5, 59.9991, 60, 360, 61.2)] == \
        ["0s", "21ms", "1s", "1.5s", "60s", "1m0s", "6m0s", "1m2s"]


def test_quota_values_must_be_positive() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            Quota(rpm=bad)  # type: ignore[arg-type]


def test_build_limiter_is_in_memory_without_redis() -> None:
    assert isinstance(build_limiter(Settings()), MemoryLimiter)
