"""The API process's runner handle with a real runner process, on both event loops uvicorn may pick."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvloop

from ember.engine.messages import Done, RunnerSpec, Token
from ember.engine.runner import RunnerHandle
from ember.errors import BadRequest
from ember.store.bundled import bundled_gguf_path


def spec() -> RunnerSpec:
    return RunnerSpec(name="smollm2:135m", model_path=str(bundled_gguf_path()), num_ctx=256, num_parallel=1,
                      num_batch=64, num_thread=2)


@asynccontextmanager
async def running() -> AsyncIterator[RunnerHandle]:
    runner = RunnerHandle(spec(), stall_timeout=30)
    try:
        await runner.wait_ready(60)
        yield runner
    finally:
        await runner.close()


async def generate(runner: RunnerHandle, tokens: list[int]) -> list[Token | Done]:
    deadline = asyncio.get_running_loop().time() + 60
    return [e async for e in runner.generate(tokens, {"temperature": 0}, (), 4, 256, deadline)]


async def _generate_a_few_tokens() -> Done:
    async with running() as runner:
        events = await generate(runner, await runner.tokenize("The capital of France is"))
    assert all(isinstance(e, Token) for e in events[:-1])
    assert isinstance(events[-1], Done)
    return events[-1]


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_a_runner_generates_on_either_event_loop(run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
    # uvloop's transports are not asyncio.Transport subclasses; once, that left every request unsent.
    done = run(asyncio.wait_for(_generate_a_few_tokens(), 90))
    assert done.eval_count == 4
    assert done.prompt_eval_count > 0


async def test_bad_input_fails_its_request_and_the_runner_lives_on() -> None:
    async with running() as runner:
        surrogate = await runner.tokenize("lone \ud800 surrogate")  # once, this made the runner exit
        assert surrogate and runner.alive
        with pytest.raises(BadRequest, match="outside the vocabulary"):
            await generate(runner, [1, 10_000_000])
        with pytest.raises(BadRequest, match="the prompt is empty"):
            await generate(runner, [])
        events = await generate(runner, await runner.tokenize("Hello"))
        assert isinstance(events[-1], Done) and runner.alive


async def test_an_abandoned_embedding_batch_stops_at_its_next_input() -> None:
    # Once, a client that hung up on a long batch still held the runner until the last input was embedded.
    texts = [f"sentence number {i} about apples, pears and the weather in spring" for i in range(48)]
    async with running() as runner:
        started = time.monotonic()
        assert len(await runner.embed(texts, True, 256)) == len(texts)
        whole_batch = time.monotonic() - started
        abandoned = asyncio.ensure_future(runner.embed(texts, True, 256))
        await asyncio.sleep(whole_batch / 5)
        abandoned.cancel()
        started = time.monotonic()
        assert await runner.tokenize("next request")
        waited = time.monotonic() - started
        assert runner.alive
    # Finishing the batch would have taken about 4/5 of a whole one; stopping takes about one input.
    assert waited < whole_batch / 2, f"waited {waited:.2f} s after the cancel; a whole batch takes {whole_batch:.2f} s"
