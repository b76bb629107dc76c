"""What the web role's per-request bookkeeping costs: one admission + finish on the in-memory and the Redis
limiter, one model-policy application and one metrics record, measured side by side in one run.

    python bench/limits_overhead.py [--redis redis://127.0.0.1:6379/0] [--n 2000] [--out bench/results]

Writes bench/results/limits-overhead-<date>.json and .md. Each number is the median (and p99) over ``--n``
sequential calls on one event loop, after a warm-up; the Redis rows include the round trip to Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from redis.asyncio import Redis

from ember.config import Settings
from ember.db.policies import ModelPolicy
from ember.gateway.limits import Limiter, MemoryLimiter, Quota, build_limiter
from ember.gateway.metrics import GatewayMetrics
from ember.gateway.policy import apply_policy

QUOTA = Quota(rpm=10**9, tpm=10**12, concurrency=10**6)  # limits that are checked but never hit


async def timed(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    for _ in range(min(200, n)):
        await call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_us": statistics.median(ordered) * 1e6, "p99_us": ordered[int(len(ordered) * 0.99) - 1] * 1e6}


async def limiter_round(limiter: Limiter) -> None:
    admission = await limiter.admit("bench", QUOTA)
    await admission.finish(42)


async def measure(redis_url: str, n: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    memory = MemoryLimiter()
    results["memory limiter: admit + finish"] = summary(await timed(lambda: limiter_round(memory), n))
    prefix = f"ember-bench-{uuid.uuid4().hex}:"
    redis = build_limiter(Settings(redis_url=redis_url, redis_prefix=prefix, redis_timeout=1.0))
    try:
        results["Redis limiter: admit + finish"] = summary(await timed(lambda: limiter_round(redis), n))
    finally:
        await redis.aclose()
        client = Redis.from_url(redis_url)
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()

    policy = ModelPolicy(model="smollm2:135m", system="Be brief.", locked=frozenset({"num_ctx"}),
                         defaults=MappingProxyType({"num_ctx": 2048, "temperature": 0.2}))
    settings = Settings(max_num_ctx=8192, max_keep_alive=600.0)
    body = {"model": "smollm2:135m", "messages": [{"role": "user", "content": "hi"}] * 8,
            "options": {"num_ctx": 32768, "num_predict": 100}, "keep_alive": "1h"}

    async def policy_call() -> None:
        apply_policy(body, api="ollama", policy=policy, settings=settings, privileged=False)

    results["apply_policy (chat, 8 messages)"] = summary(await timed(policy_call, n))
    metrics = GatewayMetrics()

    async def metrics_call() -> None:
        metrics.request_done(route="/api/chat", model="smollm2:135m", status=200, duration_s=0.5, ttft_s=0.1,
                             prompt_tokens=20, completion_tokens=30)

    results["GatewayMetrics.request_done"] = summary(await timed(metrics_call, n))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL for the Redis limiter")
    parser.add_argument("--n", type=int, default=2000, help="calls per measurement")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    results = asyncio.run(measure(args.redis, args.n))
    load = os.getloadavg()[0]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    meta = {"date": stamp, "calls": args.n, "cpus": os.cpu_count(), "load_1min": round(load, 2),
            "python": platform.python_version()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"limits-overhead-{stamp}.json").write_text(json.dumps({"meta": meta, "results": results},
                                                                       indent=2) + "\n")
    lines = [f"# Web-role bookkeeping per request ({stamp}, {args.n} calls, {meta['cpus']} CPUs, "
             f"1-min load {meta['load_1min']})", "", "| step | median | p99 |", "|---|---|---|"]
    lines += [f"| {name} | {r['median_us']:.1f} µs | {r['p99_us']:.1f} µs |" for name, r in results.items()]
    text = "\n".join(lines) + "\n"
    (args.out / f"limits-overhead-{stamp}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
