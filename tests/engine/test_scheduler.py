"""Scheduler edge cases with a scripted fake runner: queueing, eviction, keep-alive, crashes, cancellation.

Each test runs in milliseconds; tests/api and tests/e2e prove the same paths with real runner processes.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ember.config import Settings
from ember.engine.messages import Done, Token
from ember.engine.scheduler import Lease, Scheduler
from ember.errors import LoadFailed, RunnerCrashed, ServerBusy
from ember.names import ModelName
from ember.store import LocalModel
from tests.engine.fake_runner import FakeRunnerFactory, Script


def model(name: str, digest: str | None = None) -> LocalModel:
    return LocalModel(
        name=ModelName.parse(name), digest=digest or f"digest-{name}", size=1, modified_at=datetime.now(UTC),
        manifest={}, manifest_path=Path("/nonexistent"), model_path=Path(f"/models/{name}.gguf"), adapter_paths=[],
        projector_paths=[], template=None, system=None, params={}, messages=[], licenses=[], config={})


def make(script: Script | None = None, **settings: Any) -> tuple[Scheduler, FakeRunnerFactory]:
    factory = FakeRunnerFactory(script)
    values: dict[str, Any] = {"num_parallel": 1, "keep_alive": 60.0, **settings}
    return Scheduler(Settings.from_env({}, **values), runner_factory=factory, reap_interval=0.01), factory


async def generate_all(lease: Lease) -> list[Token | Done]:
    return [event async for event in lease.runner.generate([1, 2], {}, (), 8, 0, math.inf)]


async def hold_slot(scheduler: Scheduler, m: LocalModel, release: asyncio.Event) -> None:
    async with scheduler.lease(m, num_ctx=None, keep_alive=None):
        await release.wait()


async def until(condition: Any) -> None:
    async with asyncio.timeout(1):
        while not condition():
            await asyncio.sleep(0.001)


async def test_queue_full_answers_busy_at_once() -> None:
    scheduler, _ = make(max_queue=1)
    m, release = model("a"), asyncio.Event()
    holder = asyncio.create_task(hold_slot(scheduler, m, release))
    await until(lambda: scheduler.running() and scheduler.running()[0].active == 1)
    waiter = asyncio.create_task(hold_slot(scheduler, m, release))
    await until(lambda: scheduler.waiting.get(m.name.key) == 1)
    with pytest.raises(ServerBusy):
        async with scheduler.lease(m, num_ctx=None, keep_alive=None):
            pass
    assert scheduler.running()[0].queued == 1
    release.set()
    await asyncio.gather(holder, waiter)
    assert scheduler.waiting[m.name.key] == 0
    await scheduler.close()


async def test_least_recently_used_idle_model_is_evicted() -> None:
    scheduler, factory = make(max_loaded_models=2)
    a, b, c = model("a"), model("b"), model("c")
    for m in (a, b, a):  # a is used last, so b is the least recently used
        async with scheduler.lease(m, num_ctx=None, keep_alive=None):
            pass
    async with scheduler.lease(c, num_ctx=None, keep_alive=None):
        pass
    assert sorted(row.model.name.model for row in scheduler.running()) == ["a", "c"]
    evicted = next(r for r in factory.runners if r.spec.model_path.endswith("b.gguf"))
    assert evicted.dead_reason == "unloaded"
    assert len(factory.runners) == 3, "a was reused, not reloaded"
    await scheduler.close()


async def test_busy_models_are_not_evicted_the_newcomer_waits() -> None:
    scheduler, _ = make(max_loaded_models=1)
    a, b, release = model("a"), model("b"), asyncio.Event()
    holder = asyncio.create_task(hold_slot(scheduler, a, release))
    await until(lambda: bool(scheduler.running()))
    newcomer = asyncio.create_task(hold_slot(scheduler, b, asyncio.Event()))
    await asyncio.sleep(0.02)
    assert [row.model.name.model for row in scheduler.running()] == ["a"], "a is busy and must stay"
    release.set()
    await holder
    await until(lambda: [row.model.name.model for row in scheduler.running()] == ["b"])
    newcomer.cancel()
    await scheduler.close()


async def test_keep_alive_expiry_unloads_an_idle_model() -> None:
    scheduler, factory = make()
    await scheduler.start()
    async with scheduler.lease(model("a"), num_ctx=None, keep_alive=0.02):
        pass
    assert scheduler.running(), "still loaded right after the request"
    await until(lambda: not scheduler.running())
    assert factory.runners[0].dead_reason == "unloaded"
    await scheduler.close()


async def test_keep_alive_zero_unloads_when_the_last_request_ends() -> None:
    scheduler, factory = make()
    async with scheduler.lease(model("a"), num_ctx=None, keep_alive=0):
        assert scheduler.running()
    assert not scheduler.running()
    assert not factory.runners[0].alive
    await scheduler.close()


async def test_crash_mid_stream_fails_the_request_and_the_next_one_gets_a_fresh_runner() -> None:
    scheduler, factory = make(Script(tokens=("a", "b", "c"), crash_after=1))
    m = model("a")
    async with scheduler.lease(m, num_ctx=None, keep_alive=None) as lease:
        received: list[Token | Done] = []
        with pytest.raises(RunnerCrashed, match="exited unexpectedly"):
            async for event in lease.runner.generate([1], {}, (), 8, 0, math.inf):
                received.append(event)
        assert received == [Token(0, "a")]
    factory.script.crash_after = None
    async with scheduler.lease(m, num_ctx=None, keep_alive=None) as lease:
        events = await generate_all(lease)
    assert isinstance(events[-1], Done) and len(factory.runners) == 2
    assert factory.runners[1].alive
    await scheduler.close()


async def test_a_runner_that_dies_while_requests_queue_is_replaced_for_them() -> None:
    gate = asyncio.Event()
    scheduler, factory = make(Script(gate=gate))
    m = model("a")

    async def one() -> list[Token | Done]:
        async with scheduler.lease(m, num_ctx=None, keep_alive=None) as lease:
            return await generate_all(lease)

    first = asyncio.create_task(one())
    await until(lambda: factory.runners and factory.runners[0].generations == 1)
    second = asyncio.create_task(one())
    await until(lambda: scheduler.waiting.get(m.name.key) == 1)
    factory.runners[0].kill("killed by a test")
    with pytest.raises(RunnerCrashed):
        await first
    gate.set()
    events = await second
    assert isinstance(events[-1], Done)
    assert len(factory.runners) == 2
    await scheduler.close()


async def test_cancel_while_queued_leaves_no_trace() -> None:
    scheduler, factory = make()
    m, release = model("a"), asyncio.Event()
    holder = asyncio.create_task(hold_slot(scheduler, m, release))
    await until(lambda: bool(scheduler.running()))
    queued = asyncio.create_task(hold_slot(scheduler, m, asyncio.Event()))
    await until(lambda: scheduler.waiting.get(m.name.key) == 1)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert scheduler.waiting[m.name.key] == 0
    release.set()
    await holder
    async with asyncio.timeout(1), scheduler.lease(m, num_ctx=None, keep_alive=None) as lease:
        assert lease.loaded.active == 1, "the cancelled request holds no slot"
    assert len(factory.runners) == 1
    await scheduler.close()


async def test_smaller_context_reuses_the_loaded_model_larger_reloads() -> None:
    scheduler, factory = make(context_length=2048)
    m = model("a")
    async with scheduler.lease(m, num_ctx=4096, keep_alive=None):
        pass
    async with scheduler.lease(m, num_ctx=1024, keep_alive=None) as lease:
        assert lease.loaded.num_ctx == 4096
    assert len(factory.runners) == 1
    async with scheduler.lease(m, num_ctx=8192, keep_alive=None) as lease:
        assert lease.loaded.num_ctx == 8192
    assert len(factory.runners) == 2 and not factory.runners[0].alive
    await scheduler.close()


async def test_a_failed_load_is_reported_and_the_next_request_tries_again() -> None:
    scheduler, factory = make(Script(load_error="failed to load model: not a GGUF"))
    m = model("a")
    with pytest.raises(LoadFailed, match="not a GGUF"):
        async with scheduler.lease(m, num_ctx=None, keep_alive=None):
            pass
    assert scheduler.waiting[m.name.key] == 0 and not scheduler.running()
    factory.script.load_error = None
    async with scheduler.lease(m, num_ctx=None, keep_alive=None):
        pass
    assert len(factory.runners) == 2
    await scheduler.close()


async def test_a_changed_model_digest_reloads() -> None:
    scheduler, factory = make()
    async with scheduler.lease(model("a", "one"), num_ctx=None, keep_alive=None):
        pass
    async with scheduler.lease(model("a", "two"), num_ctx=None, keep_alive=None):
        pass
    assert len(factory.runners) == 2 and not factory.runners[0].alive
    await scheduler.close()
