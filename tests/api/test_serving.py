"""Serving under stress with the real engine: crashes, wedges, deadlines, eviction, queueing, disconnects,
continuous batching and the prefix cache."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BUNDLED, GEMMA, create_from_gguf
from tests.conftest_models import gemma_gguf_path
from tests.server_harness import RunningServer, start_server

QUESTION = [{"role": "user", "content": "Tell me a long story about a dragon and a knight."}]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    started: list[RunningServer] = []

    def make(**overrides: Any) -> RunningServer:
        running = start_server(tmp_path / f"models{len(started)}", **overrides)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


def runner_pid(server: RunningServer, name: str = BUNDLED) -> int:
    loaded = next(x for x in server.services.scheduler.loaded.values() if x.model.name.display == name)
    return loaded.runner.pid


def chat(client: httpx.Client, **extra: Any) -> httpx.Response:
    body = {"model": BUNDLED, "messages": QUESTION, "stream": False, **extra}
    return client.post("/api/chat", json=body)


def test_killed_runner_fails_request_clearly_and_is_replaced(make_server: Any) -> None:
    server = make_server()
    with server.client() as client:
        client.post("/api/generate", json={"model": BUNDLED})
        pid = runner_pid(server)
        lines: list[dict[str, Any]] = []
        body = {"model": BUNDLED, "messages": QUESTION, "options": {"num_predict": 256, "seed": 1}}
        with client.stream("POST", "/api/chat", json=body) as response:
            for line in response.iter_lines():
                lines.append(json.loads(line))
                if len(lines) == 3:
                    os.kill(pid, signal.SIGKILL)
        assert "error" in lines[-1] and "runner" in lines[-1]["error"]
        again = chat(client, options={"num_predict": 4})
        assert again.status_code == 200 and again.json()["done"] is True
        assert runner_pid(server) != pid


def test_wedged_runner_is_detected_and_replaced(make_server: Any) -> None:
    server = make_server(stall_timeout=5.0)  # 2 s tripped on a fresh runner's first decode on a busy machine
    with server.client() as client:
        client.post("/api/generate", json={"model": BUNDLED})
        pid = runner_pid(server)
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            response = chat(client, options={"num_predict": 8})
            assert response.status_code == 500
            assert "stopped responding" in response.json()["error"]
            assert time.monotonic() - started < 15
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        again = chat(client, options={"num_predict": 4})
        assert again.status_code == 200 and runner_pid(server) != pid


def test_deadline_expiry_names_the_deadline(make_server: Any) -> None:
    # A long prompt makes the deadline expire during prefill (seconds of work on this CPU), so the
    # outcome cannot depend on when the model happens to sample end-of-sequence.
    server = make_server(request_timeout=1.5)
    long_prompt = " ".join(f"item {i} is filed under shelf {i % 17}." for i in range(300))
    with server.client() as client:
        client.post("/api/generate", json={"model": BUNDLED})
        response = chat(client, messages=[{"role": "user", "content": long_prompt}],
                        options={"num_predict": 64, "num_ctx": 4096})
        assert response.status_code == 504
        assert "deadline of 1.5s" in response.json()["error"]
        # The abandoned prompt (~3600 tokens, about 20 s of prefill) is dropped after its current
        # 512-token step, so a small request is served again well before it could have finished.
        started = time.monotonic()
        while chat(client, options={"num_predict": 2}).status_code != 200:
            assert time.monotonic() - started < 8, "the abandoned prompt kept the runner busy"


def test_eviction_with_one_loaded_model(make_server: Any) -> None:
    server = make_server(max_loaded_models=1)
    with server.client() as client:
        create_from_gguf(client, GEMMA, gemma_gguf_path())
        client.post("/api/generate", json={"model": BUNDLED})
        assert [m["name"] for m in client.get("/api/ps").json()["models"]] == [BUNDLED]
        response = client.post("/api/generate", json={"model": GEMMA, "prompt": "Hello", "raw": True,
                                                      "stream": False, "options": {"num_predict": 2}})
        assert response.status_code == 200
        assert [m["name"] for m in client.get("/api/ps").json()["models"]] == [GEMMA]


def test_smaller_context_reuses_and_larger_reloads(make_server: Any) -> None:
    server = make_server()
    with server.client() as client:
        client.post("/api/generate", json={"model": BUNDLED})
        pid = runner_pid(server)
        assert chat(client, options={"num_ctx": 512, "num_predict": 2}).status_code == 200
        assert runner_pid(server) == pid
        assert chat(client, options={"num_ctx": 4096, "num_predict": 2}).status_code == 200
        assert runner_pid(server) != pid
        entry = client.get("/api/ps").json()["models"][0]
        assert entry["context_length"] == 4096


def _stream_in_thread(url: str, body: dict[str, Any], sink: list[Any]) -> threading.Thread:
    def work() -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            response = c.post("/api/chat", json=body)
            sink.append(response)

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def _wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_queue_overflow_is_503_while_model_is_loaded(make_server: Any) -> None:
    server = make_server(num_parallel=1, max_queue=1)
    scheduler = server.services.scheduler
    with server.client() as client:
        client.post("/api/generate", json={"model": BUNDLED})
        results: list[Any] = []
        # ~1200 prompt tokens keep each request busy for seconds whatever the model samples.
        filler = " ".join(f"item {i} is filed under shelf {i % 17}." for i in range(100))
        long = {"model": BUNDLED, "messages": [{"role": "user", "content": filler}], "stream": False,
                "options": {"num_predict": 200}}
        first = _stream_in_thread(server.url, long, results)
        _wait_for(lambda: any(x.active for x in scheduler.loaded.values()))
        second = _stream_in_thread(server.url, long, results)
        _wait_for(lambda: sum(scheduler.waiting.values()) == 1)
        ps = client.get("/api/ps").json()["models"][0]
        assert (ps["active"], ps["queued"]) == (1, 1)
        started = time.monotonic()
        third = chat(client, options={"num_predict": 2})
        assert third.status_code == 503 and time.monotonic() - started < 1
        assert third.json()["error"] == "server busy, please try again.  maximum pending requests exceeded"
        first.join()
        second.join()
        assert [r.status_code for r in results] == [200, 200]


def test_disconnect_frees_the_slot(make_server: Any) -> None:
    server = make_server(num_parallel=1)
    with server.client() as client:
        client.post("/api/generate", json={"model": BUNDLED})
        body = {"model": BUNDLED, "messages": QUESTION, "options": {"num_predict": 256}}
        with client.stream("POST", "/api/chat", json=body) as response:
            for i, _ in enumerate(response.iter_lines()):
                if i == 2:
                    break
        started = time.monotonic()
        after = chat(client, options={"num_predict": 4}).json()
        waited = time.monotonic() - started
        assert after["done"] is True
        assert after["load_duration"] < 1e9, "the next request did not wait for the abandoned one"
        assert waited < 5


def test_concurrent_requests_with_seeds_match_sequential(make_server: Any) -> None:
    server = make_server(num_parallel=8)
    prompts = [f"Write one sentence about the number {i}." for i in range(8)]

    def body(i: int) -> dict[str, Any]:
        return {"model": BUNDLED, "stream": False, "messages": [{"role": "user", "content": prompts[i]}],
                "options": {"seed": 100 + i, "temperature": 0.7, "num_predict": 32}}

    with server.client() as client:
        sequential = [client.post("/api/chat", json=body(i)).json()["message"]["content"] for i in range(8)]
        # Evict cached prefixes so the concurrent run prefills again, as the sequential one did.
        client.post("/api/generate", json={"model": BUNDLED, "keep_alive": 0})
        results: dict[int, str] = {}

        def work(i: int) -> None:
            with httpx.Client(base_url=server.url, timeout=120) as c:
                results[i] = c.post("/api/chat", json=body(i)).json()["message"]["content"]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    matches = sum(results[i] == sequential[i] for i in range(8))
    assert matches >= 7, f"only {matches}/8 concurrent outputs matched the sequential ones"


def test_second_turn_reuses_the_prefix_cache(make_server: Any) -> None:
    server = make_server(num_parallel=2)
    filler = " ".join(f"Fact {i}: the sky was clear on day {i}." for i in range(60))
    turn1 = [{"role": "system", "content": "You are a helpful assistant."},
             {"role": "user", "content": filler + " Summarise in one word."}]
    with server.client() as client:
        first = client.post("/api/chat", json={"model": BUNDLED, "messages": turn1, "stream": False,
                                               "options": {"num_predict": 8, "temperature": 0}}).json()
        turn2 = [*turn1, first["message"], {"role": "user", "content": "And in two words?"}]
        second = client.post("/api/chat", json={"model": BUNDLED, "messages": turn2, "stream": False,
                                                "options": {"num_predict": 8, "temperature": 0}}).json()
    assert second["prompt_eval_count"] > first["prompt_eval_count"]
    assert second["prompt_cache_count"] >= first["prompt_eval_count"] - 1
    assert second["prompt_eval_duration"] < first["prompt_eval_duration"] / 2


def test_quantized_kv_cache_and_per_model_slots(make_server: Any) -> None:
    server = make_server(kv_cache_type="q8_0", model_parallel=((BUNDLED, 2),), num_parallel=4)
    with server.client() as client:
        response = chat(client, options={"num_predict": 4, "temperature": 0})
        assert response.status_code == 200 and response.json()["eval_count"] >= 1
        entry = client.get("/api/ps").json()["models"][0]
    assert entry["slots"] == 2
    f16_kv_per_slot = 30 * 2 * 3 * 64 * 2 * 2048  # layers x (K,V) x kv heads x head dim x 2 bytes x tokens
    assert entry["kv_size_per_slot"] < f16_kv_per_slot * 0.6


def test_idle_model_unloads_when_keep_alive_expires(make_server: Any) -> None:
    server = make_server()
    with server.client() as client:
        assert chat(client, keep_alive="1s", options={"num_predict": 2}).status_code == 200
        assert [m["name"] for m in client.get("/api/ps").json()["models"]] == [BUNDLED]
        _wait_for(lambda: client.get("/api/ps").json()["models"] == [], timeout=10)
