"""The error shape of every route family, before and after streaming began, and what an unexpected
exception shows the client (a generic message with a request id) and the log (the traceback, same id).

The engine app runs in process with a scripted fake runner, so failures can be made to happen mid-stream;
tests/api/test_ollama_routes.py and tests/compat cover the same shapes against the real model.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ember.api.app import create_app
from ember.config import Settings
from ember.store import ModelStore
from ember.store.create import create_model
from tests.conftest_models import smollm2_gguf_path
from tests.engine.fake_runner import FakeRunnerFactory, Script

MODEL = "fake:latest"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
GENERIC = re.compile(r"^internal server error \(request id ([0-9a-f]{16})\)$")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models")
    store = ModelStore(path)
    store.init()
    for _ in create_model(store, {"model": MODEL, "from": str(smollm2_gguf_path())}):
        pass
    return path


@pytest.fixture
def script() -> Script:
    return Script(tokens=("one", " two", " three"))


@pytest.fixture
async def client(models_dir: Path, script: Script) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings.from_env({}, host="127.0.0.1:11434", models_dir=models_dir, bundled_model="")
    app = create_app(settings, runner_factory=FakeRunnerFactory(script))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:11434", timeout=10) as c:
        yield c


def assert_openai_error(body: object) -> dict[str, object]:
    assert isinstance(body, dict) and set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


def assert_ollama_error(body: object) -> str:
    assert isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], str)
    return body["error"]


async def test_ollama_errors_before_streaming_keep_their_status(client: httpx.AsyncClient) -> None:
    for path in ("/api/chat", "/api/generate", "/api/embed", "/api/show"):
        response = await client.post(path, json={"model": "absent", "prompt": "x", "input": "x",
                                                 "messages": [{"role": "user", "content": "x"}]})
        assert response.status_code == 404, path
        assert "not found" in assert_ollama_error(response.json())
    bad = await client.post("/api/chat", content=b"{not json")
    assert bad.status_code == 400
    assert_ollama_error(bad.json())


async def test_openai_errors_before_streaming_keep_their_status(client: httpx.AsyncClient) -> None:
    for path, body in (("/v1/chat/completions", {"model": "absent", "messages": [{"role": "user", "content": "x"}]}),
                       ("/v1/completions", {"model": "absent", "prompt": "x"}),
                       ("/v1/embeddings", {"model": "absent", "input": "x"})):
        response = await client.post(path, json=body)
        assert response.status_code == 404, path
        assert assert_openai_error(response.json())["type"] == "not_found_error"
    bad = await client.post("/v1/chat/completions", content=b"[1, 2")
    assert bad.status_code == 400
    assert assert_openai_error(bad.json())["type"] == "invalid_request_error"


async def test_ollama_stream_that_fails_ends_with_an_error_line(client: httpx.AsyncClient, script: Script) -> None:
    script.crash_after = 1
    response = await client.post("/api/chat", json=CHAT)
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0]["message"]["content"] == "one"
    assert "exited unexpectedly" in assert_ollama_error(lines[-1])


async def test_openai_stream_that_fails_ends_with_an_error_event(client: httpx.AsyncClient, script: Script) -> None:
    script.crash_after = 1
    response = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status_code == 200
    events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    error = assert_openai_error(json.loads(events[-1]))
    assert "exited unexpectedly" in str(error["message"])


@pytest.mark.parametrize(("path", "stream"), [("/api/chat", False), ("/api/chat", True),
                                               ("/v1/chat/completions", False), ("/v1/chat/completions", True)])
async def test_an_unexpected_exception_shows_a_request_id_not_its_text(
        client: httpx.AsyncClient, script: Script, caplog: pytest.LogCaptureFixture, path: str, stream: bool) -> None:
    script.raise_after = (1, RuntimeError("secret internals: /etc/shadow"))
    with caplog.at_level(logging.ERROR, logger="ember.api.errors"):
        response = await client.post(path, json={**CHAT, "stream": stream})
    assert "secret internals" not in response.text
    if stream:
        assert response.status_code == 200
        last = response.text.strip().splitlines()[-1].removeprefix("data: ")
        body = json.loads(last)
    else:
        assert response.status_code == 500
        body = response.json()
    message = assert_openai_error(body)["message"] if path.startswith("/v1/") else assert_ollama_error(body)
    match = GENERIC.match(str(message))
    assert match, message
    logged = [r for r in caplog.records if match.group(1) in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert "secret internals" in str(logged[0].exc_info[1])
