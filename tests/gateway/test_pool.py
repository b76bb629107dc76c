"""Node choice and health bookkeeping: edge cases with scripted engines (httpx.MockTransport); the real
two-engine behaviour is in test_routing.py."""

from __future__ import annotations

import json

import httpx
import pytest

from ember.errors import EngineUnavailable
from ember.gateway.pool import EnginePool
from ember.gateway.proxy import Outgoing, open_upstream

ENGINES = {
    "http://a:1": {"ps": [{"name": "m:latest", "active": 2, "slots": 2}], "tags": ["m:latest", "x:1b"]},
    "http://b:1": {"ps": [{"name": "m:latest", "active": 0, "slots": 2}], "tags": ["m:latest"]},
    "http://c:1": {"ps": [], "tags": ["only-c:1b"]},
}


def _engines(request: httpx.Request, down: set[str], busy: set[str]) -> httpx.Response:
    base = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
    if base in down:
        raise httpx.ConnectError("connection refused", request=request)
    engine = ENGINES[base]
    if request.url.path == "/api/version":
        return httpx.Response(200, json={"version": "0.12.6"})
    if request.url.path == "/api/ps":
        return httpx.Response(200, json={"models": engine["ps"]})
    if request.url.path == "/api/tags":
        return httpx.Response(200, json={"models": [{"name": n} for n in engine["tags"]]})
    if base in busy:
        return httpx.Response(503, json={"error": "server busy"})
    return httpx.Response(200, json={"served_by": base})


def _pool(down: set[str] | None = None, busy: set[str] | None = None) -> EnginePool:
    down, busy = down if down is not None else set(), busy if busy is not None else set()
    transport = httpx.MockTransport(lambda request: _engines(request, down, busy))
    return EnginePool(list(ENGINES), httpx.AsyncClient(transport=transport), headers={}, cooldown=60)


async def test_choice_prefers_a_free_slot_then_the_store_then_the_least_loaded() -> None:
    pool = _pool()
    await pool.check_all()
    a, b, c = pool.nodes
    assert pool.choose("m") is b  # loaded with a free slot (a's slots are all busy)
    assert pool.choose("only-c:1b") is c  # only c has it in its store
    assert pool.choose("x:1b") is a  # in a's store
    pool.started(b, "m")
    pool.started(b, "m")
    assert pool.choose("m") is a  # b's slots are now taken by this gateway's requests; a has it in its store
    pool.started(a, "other")
    assert pool.choose("unknown:1b") is c  # nobody has it: the least loaded


async def test_failed_node_cools_down_and_comes_back_after_a_good_check() -> None:
    down = {"http://b:1"}
    pool = _pool(down)
    await pool.check_all()
    a, b, c = pool.nodes
    assert not b.healthy and pool.choose("m") is not b
    pool.mark_failed(b, "gone")
    down.clear()
    await pool.check_all()
    assert not b.healthy  # still cooling down: not even checked
    b.cool_until = 0
    await pool.check_all()
    assert b.healthy and pool.choose("m") is b


async def test_connect_failure_and_503_are_retried_on_another_node() -> None:
    down: set[str] = set()
    pool = _pool(down, busy={"http://b:1"})
    await pool.check_all()
    down.add("http://a:1")
    outgoing = Outgoing("POST", "/api/chat", {}, b"{}", httpx.Timeout(5))
    upstream = await open_upstream(pool, outgoing, model="x:1b")  # a has it, but is down now; then b is busy
    assert json.loads(await upstream.response.aread()) == {"served_by": "http://c:1"}
    assert [t.split(":")[0] for t in upstream.tried] == ["a", "b"]
    assert not pool.nodes[0].healthy and pool.nodes[1].healthy  # refusing is a failure, being busy is not


async def test_every_node_down_is_engine_unavailable() -> None:
    pool = _pool(down=set(ENGINES))
    await pool.check_all()
    with pytest.raises(EngineUnavailable, match="connection refused"):
        await open_upstream(pool, Outgoing("GET", "/api/version", {}, b"", httpx.Timeout(5)), model=None)
