"""A stream that breaks after it started ends with an error in its own framing (edge case, scripted engine
through the injected httpx transport; the real kill -9 case is in test_routing.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from ember.config import Settings
from ember.db import Database
from ember.db.audit import query_audit
from ember.gateway.app import create_web_app
from tests.gateway.harness import Accounts


class BreaksMidStream(httpx.AsyncByteStream):
    def __init__(self, first: bytes) -> None:
        self.first = first

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        raise httpx.ReadError("connection reset by peer")


def _engine(request: httpx.Request) -> httpx.Response:
    if request.url.path in ("/api/ps", "/api/tags"):
        return httpx.Response(200, json={"models": []})
    if request.url.path == "/api/version":
        return httpx.Response(200, json={"version": "0.12.6"})
    if request.url.path.startswith("/v1/"):
        first = b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=BreaksMidStream(first))
    return httpx.Response(200, headers={"content-type": "application/x-ndjson"},
                          stream=BreaksMidStream(b'{"response":"Hel","done":false}\n'))


@pytest.mark.parametrize("path", ["/api/generate", "/v1/completions"])
async def test_broken_stream_ends_with_an_error_in_its_framing(fresh_db: Database, path: str) -> None:
    secret = Accounts(fresh_db).key()
    app = create_web_app(Settings.from_env({}, engines=("http://engine:1",)), database=fresh_db,
                         transport=httpx.MockTransport(_engine))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://127.0.0.1", headers={"x-api-key": secret}) as client:
        response = await client.post(path, json={"model": "m", "prompt": "hi", "stream": True})
        app.state.gateway.audit.flush(10)
    assert response.status_code == 200
    if path.startswith("/v1/"):
        events = [json.loads(e.removeprefix("data: ")) for e in response.text.split("\n\n") if e.strip()]
        assert events[0]["choices"][0]["delta"]["content"] == "Hel"
        assert "failed during the answer" in events[-1]["error"]["message"]
    else:
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert lines[0]["response"] == "Hel" and "connection reset" in lines[-1]["error"]
    row = query_audit(fresh_db, limit=1)[0]
    assert row.status == 502 and "failed during the answer" in (row.error or "")
