"""Request bodies: slow clients end within EMBER_BODY_TIMEOUT, with a 408 and nothing left behind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ember.api.bodies import MAX_JSON_DEPTH, clean_json
from ember.api.errors import install_error_handlers
from ember.api.models_routes import router as models_router
from ember.api.ollama_routes import router as ollama_router
from ember.config import Settings
from ember.errors import BadRequest
from ember.store import ModelStore
from ember.store.files import TEMP_PREFIX
from tests.engine.fake_runner import services_for


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    from fastapi import FastAPI

    store = ModelStore(tmp_path)
    store.init()
    app = FastAPI()
    app.include_router(ollama_router)
    app.include_router(models_router)
    install_error_handlers(app)
    app.state.services = services_for(Settings.from_env({}, models_dir=tmp_path, body_timeout=0.3), store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def trickle(first: bytes, pause: float) -> AsyncIterator[bytes]:
    yield first
    await asyncio.sleep(pause)
    yield b"}"


async def test_a_json_body_that_trickles_in_is_a_408(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/chat", content=trickle(b'{"model": "x"', 1.0))
    assert response.status_code == 408
    assert response.json() == {"error": "the request body did not arrive within 0.3s (EMBER_BODY_TIMEOUT)"}


async def test_a_stalled_upload_is_a_408_and_leaves_no_partial_file(client: httpx.AsyncClient,
                                                                    tmp_path: Path) -> None:
    response = await client.post("/api/blobs/sha256:" + "cd" * 32, content=trickle(b"x" * 4096, 1.0))
    assert response.status_code == 408 and "no upload data for 0.3s" in response.json()["error"]
    assert not list((tmp_path / "blobs").glob(f"{TEMP_PREFIX}*"))


async def test_a_slow_but_steady_upload_is_fine(client: httpx.AsyncClient) -> None:
    async def steady() -> AsyncIterator[bytes]:
        for _ in range(5):
            await asyncio.sleep(0.1)
            yield b"y" * 100
    import hashlib

    digest = "sha256:" + hashlib.sha256(b"y" * 500).hexdigest()
    response = await client.post(f"/api/blobs/{digest}", content=steady())
    assert response.status_code == 201


def test_clean_json_replaces_surrogates_everywhere_and_bounds_depth() -> None:
    raw = json.loads('{"a\\udc00": ["x\\ud800", {"b": "\\ud83d\\ude00 ok"}]}')
    assert clean_json(raw) == {"a\ufffd": ["x\ufffd", {"b": "\U0001f600 ok"}]}
    deep: object = "leaf"
    for _ in range(MAX_JSON_DEPTH - 1):
        deep = [deep]
    clean_json({"x": deep})  # the object and its lists: MAX_JSON_DEPTH levels
    with pytest.raises(BadRequest, match="nested deeper"):
        clean_json({"x": [deep]})
