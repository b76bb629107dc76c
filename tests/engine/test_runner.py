"""The API process's runner handle, on both event loops uvicorn may pick."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from ember.engine.runner import RunnerHandle
from ember.store.bundled import bundled_gguf_path

_SPEC = {"name": "smollm2:135m", "adapters": [], "num_ctx": 256, "num_parallel": 1, "num_batch": 64,
         "num_thread": 2, "num_gpu": 0, "kv_cache_type": "f16", "flash_attention": None}


async def _generate_a_few_tokens() -> dict[str, Any]:
    runner = RunnerHandle({**_SPEC, "model_path": str(bundled_gguf_path())}, stall_timeout=30)
    try:
        await runner.wait_ready(60)
        tokens = await runner.tokenize("The capital of France is")
        deadline = asyncio.get_running_loop().time() + 60
        events = [e async for e in runner.generate(tokens, {"temperature": 0}, [], 4, 256, deadline)]
    finally:
        await runner.close()
    assert [e[0] for e in events[:-1]] == ["token"] * (len(events) - 1)
    assert events[-1][0] == "done"
    stats: dict[str, Any] = events[-1][2]
    return stats


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_a_runner_generates_on_either_event_loop(run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
    # uvloop's transports are not asyncio.Transport subclasses; once, that left every request unsent.
    stats = run(asyncio.wait_for(_generate_a_few_tokens(), 90))
    assert stats["eval_count"] == 4
    assert stats["prompt_eval_count"] > 0
