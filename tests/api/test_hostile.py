"""Regression tests for single requests that once crashed a runner, hung, or answered 500 (issue 14),
against the real server and model. Each also checks that the model's runner survived (same pid)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from ember.store.files import TEMP_PREFIX
from tests.conftest import BUNDLED
from tests.server_harness import RunningServer

CHAT_PATHS = ("/api/chat", "/v1/chat/completions")
ALL_POST_PATHS = ("/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/api/show", "/api/create",
                  "/api/copy", "/api/pull", "/api/push", "/v1/chat/completions", "/v1/completions",
                  "/v1/embeddings")


def runner_pid(server: RunningServer) -> int:
    loaded = server.services.scheduler.loaded
    runner = next(x.runner for x in loaded.values() if x.model.name.display == BUNDLED)
    return int(runner.process.pid)  # type: ignore[attr-defined]


def warm(client: httpx.Client) -> None:
    response = client.post("/api/generate", json={"model": BUNDLED, "prompt": "Hi", "stream": False,
                                                  "options": {"num_predict": 1}})
    assert response.status_code == 200, response.text


def chat_body(path: str, content: str) -> dict[str, object]:
    body: dict[str, object] = {"model": BUNDLED, "messages": [{"role": "user", "content": content}],
                               "stream": False}
    body["options" if path.startswith("/api") else "extra_body"] = {"num_predict": 4}
    if path.startswith("/v1"):
        body["max_tokens"] = 4
    return body


@pytest.mark.parametrize("path", CHAT_PATHS)
def test_a_lone_surrogate_is_replaced_and_the_runner_lives(server: RunningServer, client: httpx.Client,
                                                           path: str) -> None:
    warm(client)
    pid = runner_pid(server)
    raw = json.dumps(chat_body(path, "x")).replace('"x"', '"lone \\ud800 here"')
    response = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    prompt = client.post("/api/generate", content=json.dumps({
        "model": BUNDLED, "prompt": "p", "stream": False, "options": {"num_predict": 2}}).replace('"p"', '"\\udfff"'))
    assert prompt.status_code == 200, prompt.text
    assert runner_pid(server) == pid


@pytest.mark.parametrize("num_ctx", [1, -1, 0, 63, 10**9])
def test_out_of_range_num_ctx_is_a_400_naming_the_range(client: httpx.Client, num_ctx: int) -> None:
    ollama = client.post("/api/chat", json={"model": BUNDLED, "messages": [{"role": "user", "content": "hi"}],
                                            "options": {"num_ctx": num_ctx}}, timeout=10)
    assert ollama.status_code == 400
    assert ollama.json()["error"] == f'option "num_ctx" must be between 64 and 1048576, got {num_ctx}'
    openai = client.post("/v1/chat/completions", json={
        "model": BUNDLED, "messages": [{"role": "user", "content": "hi"}], "num_ctx": num_ctx}, timeout=10)
    assert openai.status_code == 400
    assert "between 64 and 1048576" in openai.json()["error"]["message"]


@pytest.mark.parametrize(("option", "value"), [("temperature", -1), ("top_p", 1.5), ("top_k", -7),
                                               ("repeat_last_n", -2), ("num_predict", -3), ("stop", ["x"] * 65)])
def test_other_out_of_range_options_are_400s(client: httpx.Client, option: str, value: object) -> None:
    response = client.post("/api/generate", json={"model": BUNDLED, "prompt": "hi", "options": {option: value}},
                           timeout=10)
    assert response.status_code == 400 and option in response.json()["error"]


def test_thousands_of_tiny_messages_are_fitted_quickly_and_too_many_are_refused(
        server: RunningServer, client: httpx.Client) -> None:
    many = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(4001)]
    response = client.post("/api/chat", json={"model": BUNDLED, "messages": many, "stream": False,
                                              "options": {"num_predict": 2, "num_ctx": 512}}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["prompt_eval_count"] < 512
    too_many = [{"role": "user", "content": "x"}] * (server.settings.max_messages + 1)
    refused = client.post("/api/chat", json={"model": BUNDLED, "messages": too_many}, timeout=10)
    assert refused.status_code == 400 and "too many messages" in refused.json()["error"]


def test_a_prompt_that_renders_to_nothing_is_a_400_and_wedges_nothing(server: RunningServer,
                                                                      client: httpx.Client) -> None:
    warm(client)
    pid = runner_pid(server)
    for stream in (False, True):
        response = client.post("/api/generate", json={"model": BUNDLED, "prompt": "hi", "template": "",
                                                      "stream": stream}, timeout=10)
        assert response.status_code == 400, response.text
        assert "prompt is empty" in response.json()["error"]
    warm(client)
    assert runner_pid(server) == pid


def test_a_non_streaming_request_stops_generating_when_its_client_goes(server: RunningServer,
                                                                       client: httpx.Client) -> None:
    warm(client)
    body = {"model": BUNDLED, "prompt": "Write a very long story about a dragon.", "stream": False,
            "options": {"num_predict": 250, "temperature": 1.0}}
    with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=server.url, timeout=0.5) as impatient:
        impatient.post("/api/generate", json=body)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = client.get("/api/ps").json()["models"]
        if all(row["active"] == 0 for row in rows):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the abandoned request still holds its slot: {rows}")


@pytest.mark.parametrize("path", ALL_POST_PATHS)
def test_json_nested_ten_thousand_deep_is_a_400_on_every_route(client: httpx.Client, path: str) -> None:
    body = '{"model": "' + BUNDLED + '", "x": ' + "[" * 10_000 + "]" * 10_000 + "}"
    response = client.post(path, content=body, timeout=10)
    assert response.status_code == 400, response.text
    assert "nested deeper than 64 levels" in response.text


def test_context_with_foreign_token_ids_is_a_400(server: RunningServer, client: httpx.Client) -> None:
    warm(client)
    pid = runner_pid(server)
    for context in ([10**9], [-1, 5]):
        response = client.post("/api/generate", json={"model": BUNDLED, "prompt": "hi", "context": context,
                                                      "stream": False}, timeout=10)
        assert response.status_code == 400, response.text
        assert "outside the vocabulary" in response.json()["error"]
    assert runner_pid(server) == pid


def test_create_from_a_fifo_or_a_device_is_a_400_at_once(client: httpx.Client, tmp_path: Path) -> None:
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    for source in (str(fifo), "/dev/zero"):
        response = client.post("/api/create", json={"model": "fifo", "from": source, "stream": False}, timeout=10)
        assert response.status_code == 400
        assert "not a regular file" in response.json()["error"]


def test_an_aborted_blob_upload_is_logged_without_a_traceback(server: RunningServer, client: httpx.Client,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    digest = "sha256:" + "ab" * 32

    def trickle_then_stop():  # type: ignore[no-untyped-def]
        yield b"x" * 1024
        time.sleep(0.3)  # the server is now inside the upload, reading the body
        raise ConnectionAbortedError("client went away")

    caplog.set_level("INFO")
    with pytest.raises(ConnectionAbortedError), httpx.Client(base_url=server.url) as uploader:
        uploader.post(f"/api/blobs/{digest}", content=trickle_then_stop())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("disconnected" in r.getMessage() for r in caplog.records):
        time.sleep(0.05)
    assert any("disconnected" in r.getMessage() and r.levelname == "INFO" for r in caplog.records), [
        (r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert not any(r.exc_info for r in caplog.records)
    assert not list(server.services.store.blobs_dir.glob(f"{TEMP_PREFIX}*")), "the partial upload was removed"
    assert client.head(f"/api/blobs/{digest}").status_code == 404
