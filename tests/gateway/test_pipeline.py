"""The forwarding pipeline against a real engine: streams pass through as they come, a client that leaves
cancels the work on the engine, engine errors keep their status and shape, and every request gets an id."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from ember.db import Database
from ember.db.audit import query_audit
from tests.conftest import BUNDLED
from tests.gateway.harness import ENGINE_KEY, RunningWeb, start_web
from tests.server_harness import RunningServer

LONG = {"num_predict": 256, "temperature": 0.8, "seed": 7}


def _active_on_engine(engine: RunningServer) -> int:
    ps = httpx.get(engine.url + "/api/ps", headers={"Authorization": f"Bearer {ENGINE_KEY}"}).json()
    return sum(int(m.get("active", 0)) + int(m.get("queued", 0)) for m in ps["models"])


def _wait_idle(engine: RunningServer, within: float) -> float:
    started = time.monotonic()
    while _active_on_engine(engine):
        assert time.monotonic() - started < within, "the engine kept generating after the client left"
        time.sleep(0.05)
    return time.monotonic() - started


def test_stream_is_passed_through_as_it_arrives(web: RunningWeb, key: str) -> None:
    arrivals = []
    received = b""
    body = {"model": BUNDLED, "prompt": "List the numbers from one to thirty:",
            "options": {"num_predict": 30, "temperature": 0}}
    with web.client(key) as client, client.stream("POST", "/api/generate", json=body) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
        for chunk in response.iter_raw():
            arrivals.append(time.monotonic())
            received += chunk
    lines = received.count(b"\n")
    # A buffering proxy would deliver all the lines in one or two reads at the end; passed through, nearly
    # every token line arrives in a read of its own (the model may end before num_predict).
    assert lines >= 6, received
    assert len(arrivals) >= min(10, lines - 2), (len(arrivals), lines)
    assert arrivals[-1] - arrivals[0] > 0.01


def test_client_leaving_a_stream_cancels_it_on_the_engine(web: RunningWeb, keyed_engine: RunningServer,
                                                          key: str) -> None:
    body = {"model": BUNDLED, "prompt": "Write a long story about a dragon.", "options": LONG}
    with web.client(key) as client, client.stream("POST", "/api/generate", json=body) as response:
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
        assert _active_on_engine(keyed_engine) == 1
    _wait_idle(keyed_engine, within=5)
    web.flush_audit()
    row = query_audit(web.gateway.database, limit=1)[0]
    assert row.route == "/api/generate" and row.status == 499
    assert row.completion_tokens is not None and row.completion_tokens < 256


async def test_client_leaving_before_a_non_streamed_answer_cancels_it(web: RunningWeb,
                                                                      keyed_engine: RunningServer,
                                                                      key: str) -> None:
    body = {"model": BUNDLED, "stream": False, "prompt": "Write a long story about a castle.", "options": LONG}
    async with httpx.AsyncClient(base_url=web.url, headers={"x-api-key": key}, timeout=120) as client:
        request = asyncio.create_task(client.post("/api/generate", json=body))
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(_active_on_engine, keyed_engine):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        request.cancel()  # drops the connection, as a client that gives up does
        with pytest.raises(asyncio.CancelledError):
            await request
    await asyncio.to_thread(_wait_idle, keyed_engine, 5)
    await asyncio.to_thread(web.flush_audit)
    assert query_audit(web.gateway.database, limit=1)[0].status == 499


def test_engine_errors_keep_status_and_shape(web: RunningWeb, key: str) -> None:
    with web.client(key) as client:
        missing = client.post("/api/chat", json={"model": "no-such-model:1b", "messages": []})
        assert missing.status_code == 404 and "not found" in missing.json()["error"]
        openai_missing = client.post("/v1/chat/completions", json={"model": "nope", "messages": [
            {"role": "user", "content": "hi"}]})
        assert openai_missing.status_code == 404 and openai_missing.json()["error"]["message"]
        bad = client.post("/api/chat", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and "invalid JSON" in bad.json()["error"]
        deep = client.post("/v1/embeddings", content=b"[" * 100_000 + b"]" * 100_000)
        assert deep.status_code == 400 and deep.json()["error"]["type"] == "invalid_request_error"
        wrong_type = client.post("/api/embed", json={"model": 7, "input": "x"})
        assert wrong_type.status_code == 400
        assert missing.headers["x-request-id"] != bad.headers["x-request-id"]


def test_no_reachable_engine_is_a_quick_clear_503(web_without_engines: RunningWeb, fresh_db: Database) -> None:
    from tests.gateway.harness import Accounts

    secret = Accounts(fresh_db).key()
    started = time.monotonic()
    with web_without_engines.client(secret) as client:
        response = client.post("/api/chat", json={"model": BUNDLED, "messages": [{"role": "user", "content": "x"}]})
        listing = client.get("/v1/models")
    assert response.status_code == 503 and "no engine node" in response.json()["error"]
    assert listing.status_code == 503 and listing.json()["error"]["type"] == "server_error"
    assert time.monotonic() - started < 10
    web_without_engines.flush_audit()
    assert {r.status for r in query_audit(fresh_db)} == {503}


def test_an_engine_refusing_the_engine_key_is_a_setup_error(keyed_engine: RunningServer, fresh_db: Database) -> None:
    from tests.gateway.harness import Accounts

    running = start_web(fresh_db, [keyed_engine.url], engine_key="not-the-engine-key")
    try:
        with running.client(Accounts(fresh_db).key()) as client:
            response = client.post("/api/show", json={"model": BUNDLED})
        assert response.status_code == 503 and "EMBER_ENGINE_KEY" in response.json()["error"]
        assert "www-authenticate" not in response.headers  # the client's key was fine
    finally:
        running.stop()
