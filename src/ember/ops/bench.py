"""`ember bench`: measure a running server (engine or web role) with streaming chat requests.

Every request is ``POST /api/chat`` with ``stream: true``, temperature 0 and a fixed seed; the final NDJSON
chunk carries the server's token counts. The phases, in order:

- warm-up: one short request (it also loads the model, which is not measured);
- single stream: ``requests`` requests one at a time; decode tokens/s = (generated - 1) / (last byte - first
  token), time to first token = send -> first chunk with text (client side), medians;
- prompt: ``requests`` requests with a prompt of about ``prompt_tokens`` tokens and one generated token;
  prompt tokens/s = prompt tokens / time to first token (what a client sees), median;
- concurrency: for each level c, c clients each send ``requests`` requests back to back; aggregate tokens/s
  = all generated tokens / wall time from the first send to the last byte.

Each run tags its prompts with a random nonce, so a second run against the same server cannot be answered
from the prompt cache the first one left behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from ember.ops.bench_workload import Message, RoughCounter, prefill_prompt, story_prompt

Progress = Callable[[str], None]  # called once per finished request, with the phase's name


@dataclass(frozen=True)
class Plan:
    model: str
    requests: int = 3
    max_tokens: int = 64
    prompt_tokens: int = 512
    concurrency: tuple[int, ...] = (1, 4, 8)
    timeout: float = 300.0

    @property
    def total_requests(self) -> int:
        return 1 + 2 * self.requests + sum(c * self.requests for c in self.concurrency)


@dataclass
class Sample:
    """One request, timed on the client; counts from the server's final chunk."""

    ok: bool
    sent: float
    ttft: float | None = None
    done: float | None = None
    prompt_tokens: int = 0
    tokens: int = 0
    error: str = ""

    @property
    def decode_rate(self) -> float | None:
        if not self.ok or self.ttft is None or self.done is None or self.tokens < 2:
            return None
        span = self.done - (self.sent + self.ttft)
        return (self.tokens - 1) / span if span > 0 else None


@dataclass
class LevelResult:
    clients: int
    requests: int
    failed: int
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BenchResult:
    url: str
    model: str
    plan: Plan
    decode_tokens_per_s: float | None = None
    ttft_s: float | None = None
    prompt_tokens_per_s: float | None = None
    prompt_tokens: int | None = None
    levels: list[LevelResult] = field(default_factory=list)
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url, "model": self.model, "plan": asdict(self.plan), "machine": self.machine,
            "single_stream": {"decode_tokens_per_s": self.decode_tokens_per_s, "ttft_s": self.ttft_s},
            "prompt": {"prompt_tokens": self.prompt_tokens, "prompt_tokens_per_s": self.prompt_tokens_per_s},
            "concurrency": [{**asdict(level), "tokens_per_s": level.tokens_per_s} for level in self.levels],
            "failed": self.failed, "errors": self.errors[:10],
        }


def machine_facts() -> dict[str, Any]:
    """Where the numbers were taken: they mean little without the machine and its load."""
    load = os.getloadavg()
    return {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
            "processor": _cpu_model(), "loadavg_1m_at_start": round(load[0], 2),
            "time": datetime.now(UTC).isoformat(timespec="seconds")}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


class Bencher:
    def __init__(self, url: str, plan: Plan, *, api_key: str | None = None,
                 progress: Progress | None = None) -> None:
        self.url = url.rstrip("/")
        self.plan = plan
        self.progress = progress or (lambda phase: None)
        self.nonce = secrets.token_hex(3)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=max(plan.concurrency, default=1) + 2)
        self.http = httpx.AsyncClient(base_url=self.url, headers=headers, limits=limits,
                                      timeout=httpx.Timeout(plan.timeout, connect=10.0))

    async def run(self) -> BenchResult:
        result = BenchResult(url=self.url, model=self.plan.model, plan=self.plan, machine=machine_facts())
        try:
            warm = await self._chat(story_prompt(f"warmup {self.nonce}", 0), 8, "warm-up")
            if not warm.ok:
                raise BenchError(f"the warm-up request failed: {warm.error}")
            self._single_stream(result, await self._sequential("single stream", self._story, self.plan.max_tokens))
            self._prompt(result, await self._sequential("prompt", self._long_prompt, 1))
            for clients in self.plan.concurrency:
                result.levels.append(await self._level(result, clients))
        finally:
            await self.http.aclose()
        return result

    def _story(self, i: int) -> list[Message]:
        return story_prompt(f"bench {self.nonce}", i)

    def _long_prompt(self, i: int) -> list[Message]:
        return prefill_prompt(i, self.plan.prompt_tokens, RoughCounter())

    async def _sequential(self, phase: str, prompt: Callable[[int], list[Message]],
                          max_tokens: int) -> list[Sample]:
        samples = []
        for i in range(self.plan.requests):
            # A prompt index per phase keeps the prompts of different phases apart.
            samples.append(await self._chat(prompt(i + 1000 * len(phase)), max_tokens, phase))
        return samples

    def _single_stream(self, result: BenchResult, samples: list[Sample]) -> None:
        self._count_failures(result, samples)
        rates = [r for s in samples if (r := s.decode_rate) is not None]
        ttfts = [s.ttft for s in samples if s.ok and s.ttft is not None]
        result.decode_tokens_per_s = statistics.median(rates) if rates else None
        result.ttft_s = statistics.median(ttfts) if ttfts else None

    def _prompt(self, result: BenchResult, samples: list[Sample]) -> None:
        self._count_failures(result, samples)
        good = [s for s in samples if s.ok and s.ttft and s.prompt_tokens]
        if good:
            result.prompt_tokens_per_s = statistics.median(s.prompt_tokens / (s.ttft or 1) for s in good)
            result.prompt_tokens = int(statistics.median(s.prompt_tokens for s in good))

    async def _level(self, result: BenchResult, clients: int) -> LevelResult:
        phase = f"{clients} client{'s' if clients > 1 else ''}"

        async def client(k: int) -> list[Sample]:
            return [await self._chat(story_prompt(f"c{clients} {self.nonce}", k * self.plan.requests + j),
                                     self.plan.max_tokens, phase) for j in range(self.plan.requests)]

        started = time.perf_counter()
        batches = await asyncio.gather(*(client(k) for k in range(clients)))
        seconds = time.perf_counter() - started
        samples = [s for batch in batches for s in batch]
        self._count_failures(result, samples)
        return LevelResult(clients=clients, requests=len(samples), failed=sum(not s.ok for s in samples),
                           tokens=sum(s.tokens for s in samples if s.ok), seconds=seconds)

    @staticmethod
    def _count_failures(result: BenchResult, samples: list[Sample]) -> None:
        for sample in samples:
            if not sample.ok:
                result.failed += 1
                result.errors.append(sample.error)

    async def _chat(self, messages: list[Message], max_tokens: int, phase: str) -> Sample:
        body = {"model": self.plan.model, "messages": messages, "stream": True,
                "options": {"num_predict": max_tokens, "temperature": 0, "seed": 42}}
        sample = Sample(ok=False, sent=time.perf_counter())
        try:
            await self._stream(body, sample)
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            sample.error = f"{type(exc).__name__}: {exc}"[:300]
        self.progress(phase)
        return sample

    async def _stream(self, body: dict[str, Any], sample: Sample) -> None:
        async with self.http.stream("POST", "/api/chat", json=body) as response:
            if response.status_code != 200:
                sample.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                chunk = json.loads(line)
                if "error" in chunk:
                    sample.error = str(chunk["error"])[:300]
                    return
                if sample.ttft is None and (chunk.get("message") or {}).get("content"):
                    sample.ttft = time.perf_counter() - sample.sent
                if chunk.get("done"):
                    sample.done = time.perf_counter()
                    sample.tokens = int(chunk.get("eval_count", 0))
                    sample.prompt_tokens = int(chunk.get("prompt_eval_count", 0))
        if sample.done is not None and sample.ttft is None and sample.tokens:
            sample.ttft = sample.done - sample.sent  # the only token carried no visible text (one-token prompts)
        if sample.done is None:
            sample.error = "the stream ended without a final chunk"
        elif sample.ttft is None:
            sample.error = "the stream ended without generated text"
        else:
            sample.ok = True


class BenchError(Exception):
    """The server could not be benchmarked at all (unreachable, unknown model); ``str()`` says why."""


def run_bench(url: str, plan: Plan, *, api_key: str | None = None, progress: Progress | None = None) -> BenchResult:
    return asyncio.run(Bencher(url, plan, api_key=api_key, progress=progress).run())
