"""The engine's /metrics with the real bundled model: it parses with prometheus_client's parser, counters
move by what real requests report, the gauges follow the scheduler, and kill -9 of a runner moves the
restart counter."""

from __future__ import annotations

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
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BUNDLED
from tests.server_harness import RunningServer, start_server

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """An engine of its own (one slot, so a second request queues; its runner gets killed here)."""
    running = start_server(tmp_path_factory.mktemp("metrics-models"), num_parallel=1)
    yield running
    running.stop()


@pytest.fixture
def client(engine: RunningServer) -> Iterator[httpx.Client]:
    with engine.client() as c:
        yield c


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        assert family.name.startswith("ember_"), family.name
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_chat_moves_requests_tokens_and_histograms(client: httpx.Client) -> None:
    before = scrape(client)
    body = {"model": BUNDLED, "messages": [{"role": "user", "content": "Say hi."}], "stream": False,
            "options": {"num_predict": 8, "seed": 1}}
    answer = client.post("/api/chat", json=body).json()
    after = scrape(client)
    assert get(after, "ember_requests_total", route="/api/chat", model=BUNDLED, status="200") == \
        get(before, "ember_requests_total", route="/api/chat", model=BUNDLED, status="200") + 1
    assert get(after, "ember_prompt_tokens_total", model=BUNDLED) - get(before, "ember_prompt_tokens_total",
                                                                        model=BUNDLED) == answer["prompt_eval_count"]
    assert get(after, "ember_generated_tokens_total", model=BUNDLED) - \
        get(before, "ember_generated_tokens_total", model=BUNDLED) == answer["eval_count"]
    for histogram in ("ember_time_to_first_token_seconds_count", "ember_queue_wait_seconds_count"):
        assert get(after, histogram, model=BUNDLED) == get(before, histogram, model=BUNDLED) + 1, histogram
    assert get(after, "ember_request_duration_seconds_count", route="/api/chat", model=BUNDLED) == \
        get(before, "ember_request_duration_seconds_count", route="/api/chat", model=BUNDLED) + 1
    assert get(after, "ember_loaded_models") == 1
    assert get(after, "ember_model_memory_bytes", model=BUNDLED) > 50_000_000  # weights + KV of a 135M model


def test_streamed_openai_chat_and_embeddings_are_counted(client: httpx.Client) -> None:
    before = scrape(client)
    body = {"model": BUNDLED, "messages": [{"role": "user", "content": "Count to three."}], "max_tokens": 6,
            "stream": True, "stream_options": {"include_usage": True}}
    usage: dict[str, Any] = {}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                usage = json.loads(line[6:]).get("usage") or usage
    embedded = client.post("/api/embed", json={"model": BUNDLED, "input": ["one", "two"]}).json()
    after = scrape(client)
    assert get(after, "ember_requests_total", route="/v1/chat/completions", model=BUNDLED, status="200") == \
        get(before, "ember_requests_total", route="/v1/chat/completions", model=BUNDLED, status="200") + 1
    assert get(after, "ember_requests_total", route="/api/embed", model=BUNDLED, status="200") == \
        get(before, "ember_requests_total", route="/api/embed", model=BUNDLED, status="200") + 1
    assert get(after, "ember_generated_tokens_total", model=BUNDLED) - \
        get(before, "ember_generated_tokens_total", model=BUNDLED) == usage["completion_tokens"]
    assert get(after, "ember_prompt_tokens_total", model=BUNDLED) - \
        get(before, "ember_prompt_tokens_total", model=BUNDLED) == \
        usage["prompt_tokens"] + embedded["prompt_eval_count"]


def test_refusals_are_counted_without_client_chosen_labels(client: httpx.Client) -> None:
    before = scrape(client)
    assert client.post("/api/chat", json={"model": "no-such-model", "messages": []}).status_code == 404
    assert client.get("/api/no/such/route/x7f3").status_code == 404
    refused = client.post("/api/chat", json={"model": BUNDLED, "think": True,
                                             "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 400  # smollm2 cannot think: refused after the model was resolved
    after = scrape(client)
    assert get(after, "ember_requests_total", route="/api/chat", model=BUNDLED, status="400") == \
        get(before, "ember_requests_total", route="/api/chat", model=BUNDLED, status="400") + 1
    assert get(after, "ember_requests_total", route="/api/chat", model="", status="404") == \
        get(before, "ember_requests_total", route="/api/chat", model="", status="404") + 1
    assert get(after, "ember_requests_total", route="other", model="", status="404") == \
        get(before, "ember_requests_total", route="other", model="", status="404") + 1
    labels = {value for (_, pairs) in after for _, value in pairs}
    assert not any("no-such-model" in v or "x7f3" in v for v in labels)


def test_active_and_queued_follow_the_scheduler(client: httpx.Client, engine: RunningServer) -> None:
    long = {"model": BUNDLED, "messages": [{"role": "user", "content": "Tell a long story."}],
            "options": {"num_predict": 32, "seed": 2}}
    first_line = threading.Event()
    done: list[int] = []

    def stream() -> None:
        with engine.client() as other, other.stream("POST", "/api/chat", json=long) as response:
            for _ in response.iter_lines():
                first_line.set()
            done.append(response.status_code)

    def queued() -> None:  # one slot: this waits behind the stream
        with engine.client() as other:
            other.post("/api/chat", json={**long, "options": {"num_predict": 2}, "stream": False})
            done.append(200)

    threads = [threading.Thread(target=stream)]
    threads[0].start()
    assert first_line.wait(60)
    threads.append(threading.Thread(target=queued))
    threads[1].start()
    deadline = time.monotonic() + 30
    while get(scrape(client), "ember_queued_requests", model=BUNDLED) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    during = scrape(client)
    assert get(during, "ember_active_requests", model=BUNDLED) == 1
    assert get(during, "ember_queued_requests", model=BUNDLED) == 1
    for thread in threads:
        thread.join(120)
    after = scrape(client)
    assert len(done) == 2
    assert get(after, "ember_active_requests", model=BUNDLED) == 0
    assert get(after, "ember_queued_requests", model=BUNDLED) == 0


def test_kill_9_of_a_runner_moves_the_restart_counter(client: httpx.Client, engine: RunningServer) -> None:
    client.post("/api/generate", json={"model": BUNDLED})
    before = get(scrape(client), "ember_runner_restarts_total", model=BUNDLED)
    loaded = next(x for x in engine.services.scheduler.loaded.values() if x.model.name.display == BUNDLED)
    os.kill(loaded.runner.pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while get(scrape(client), "ember_runner_restarts_total", model=BUNDLED) == before:
        assert time.monotonic() < deadline, "the dead runner was never dropped"
        time.sleep(0.1)
    after = scrape(client)
    assert get(after, "ember_runner_restarts_total", model=BUNDLED) == before + 1
    assert get(after, "ember_loaded_models") == 0
    again = client.post("/api/generate", json={"model": BUNDLED, "prompt": "hi", "stream": False,
                                               "options": {"num_predict": 2}})
    assert again.status_code == 200  # a fresh runner serves; a normal load is not a restart
    final = scrape(client)
    assert get(final, "ember_runner_restarts_total", model=BUNDLED) == before + 1
    assert get(final, "ember_loaded_models") == 1


def test_metrics_path_is_not_a_module_level_registry(tmp_path: Path) -> None:
    """Two engine apps in one process keep separate counts (one registry per app)."""
    from ember.api.app import create_app
    from ember.config import Settings

    first = create_app(Settings(models_dir=tmp_path))
    second = create_app(Settings(models_dir=tmp_path))
    first.state.metrics.request_done("/api/tags", "", 200, 0.01)
    text = second.state.metrics.render()[0].decode()
    assert 'ember_requests_total{model="",route="/api/tags",status="200"}' not in text
    assert 'ember_requests_total{model="",route="/api/tags",status="200"} 1.0' in \
        first.state.metrics.render()[0].decode()
