"""A scripted stand-in for a runner process, for fast scheduler tests of edge cases.

It implements the scheduler's ``Runner`` protocol in memory: loads take ``load_delay``, a generation yields
the script's tokens, waits on ``gate`` (when set) before finishing, and can be told to crash after N tokens.
The real-runner tests (tests/api, tests/e2e) remain the proof that serving works.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from ember.api.services import Services
from ember.config import Settings
from ember.engine.messages import Done, RunnerInfo, RunnerSpec, Token
from ember.engine.scheduler import Scheduler
from ember.engine.service import Engine
from ember.errors import LoadFailed, RunnerCrashed
from ember.store import ModelStore


@dataclass
class Script:
    tokens: tuple[str, ...] = ("hello", " world")
    load_delay: float = 0.0
    load_error: str | None = None
    crash_after: int | None = None  # die after sending this many tokens
    raise_after: tuple[int, Exception] | None = None  # raise this (a bug) after sending this many tokens
    gate: asyncio.Event | None = None  # generations wait here before finishing
    n_ctx_train: int = 8192


@dataclass
class FakeRunner:
    spec: RunnerSpec
    script: Script
    dead_reason: str | None = None
    info: RunnerInfo | None = None
    generations: int = 0
    cancelled: int = 0
    _died: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def alive(self) -> bool:
        return self.dead_reason is None

    async def wait_ready(self, timeout: float) -> RunnerInfo:
        await asyncio.sleep(self.script.load_delay)
        if self.script.load_error:
            self.kill("load failed")
            raise LoadFailed(self.script.load_error)
        self.info = RunnerInfo(n_ctx_train=self.script.n_ctx_train,
                               num_ctx=min(self.spec.num_ctx, self.script.n_ctx_train),
                               num_parallel=self.spec.num_parallel, n_embd=4, add_bos=True, size=1000,
                               kv_size_per_slot=10)
        return self.info

    def kill(self, reason: str) -> None:
        if self.dead_reason is None:
            self.dead_reason = reason
        self._died.set()

    async def close(self) -> None:
        self.kill("unloaded")

    async def generate(self, tokens: list[int], options: dict[str, Any], stop: tuple[str, ...], num_predict: int,
                       num_ctx: int, deadline: float, *, top_logprobs: int | None = None,
                       keep: int | None = None
                       ) -> AsyncGenerator[Token | Done, None]:
        self.generations += 1
        finished = False
        try:
            for sent, text in enumerate(self.script.tokens):
                self._check_alive()
                if self.script.crash_after == sent:
                    self.kill("model runner process exited unexpectedly (exit code -9)")
                    self._check_alive()
                if self.script.raise_after and self.script.raise_after[0] == sent:
                    raise self.script.raise_after[1]
                yield Token(0, text)
            if self.script.gate is not None:
                await self._wait_for_gate(self.script.gate)
            finished = True
            yield Done(0, "stop", prompt_eval_count=len(tokens), eval_count=len(self.script.tokens))
        finally:
            if not finished:
                self.cancelled += 1

    async def _wait_for_gate(self, gate: asyncio.Event) -> None:
        died = asyncio.ensure_future(self._died.wait())
        opened = asyncio.ensure_future(gate.wait())
        try:
            await asyncio.wait({died, opened}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            died.cancel()
            opened.cancel()
        self._check_alive()

    def _check_alive(self) -> None:
        if not self.alive:
            raise RunnerCrashed(self.dead_reason or "model runner stopped")

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        return [1 + (ord(c) % 50) for c in text] or [1]

    async def embed(self, texts: list[str], truncate: bool, num_ctx: int) -> list[tuple[list[float], int]]:
        return [([1.0, 0.0, 0.0, 0.0], len(t)) for t in texts]


class FakeRunnerFactory:
    """Makes FakeRunners following one script, and remembers every runner it made."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self.runners: list[FakeRunner] = []

    def __call__(self, spec: RunnerSpec) -> FakeRunner:
        runner = FakeRunner(spec, self.script)
        self.runners.append(runner)
        return runner


def services_for(settings: Settings, store: ModelStore, scheduler: Scheduler | None = None) -> Services:
    """Real services whose scheduler never starts a process (for route tests that need no model)."""
    scheduler = scheduler or Scheduler(settings, runner_factory=FakeRunnerFactory())
    return Services(settings=settings, store=store, scheduler=scheduler, engine=Engine(settings, store, scheduler))
