from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ember.api.errors import install_error_handlers
from ember.api.models_routes import router
from ember.config import Settings
from ember.engine.scheduler import Scheduler
from ember.store import LocalModel, ModelStore
from tests.conftest_models import smollm2_gguf_path
from tests.engine.fake_runner import FakeRunnerFactory, services_for


class RecordingScheduler(Scheduler):
    """A real scheduler whose runners are never started; records which models it was asked to unload."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, runner_factory=FakeRunnerFactory())
        self.unloaded: list[str] = []

    async def unload(self, model: LocalModel) -> bool:
        self.unloaded.append(model.name.display)
        return await super().unload(model)


def build_app(tmp_path: Path, scheduler: Scheduler | None = None) -> tuple[FastAPI, ModelStore]:
    settings = Settings.from_env({}, models_dir=tmp_path, max_body_bytes=4096)
    store = ModelStore(tmp_path)
    store.init()
    app = FastAPI()
    app.include_router(router)
    install_error_handlers(app)
    app.state.services = services_for(settings, store, scheduler)
    return app, store


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = build_app(tmp_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as c:
        yield c


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_blob_upload_head_and_reupload(client: httpx.AsyncClient, tmp_path: Path) -> None:
    data = b"x" * 100_000  # larger than max_body_bytes: blob uploads have no body limit
    digest = sha(data)
    assert (await client.head(f"/api/blobs/{digest}")).status_code == 404
    created = await client.post(f"/api/blobs/{digest}", content=data)
    assert created.status_code == 201 and created.content == b""
    assert (tmp_path / "blobs" / digest.replace(":", "-")).read_bytes() == data
    assert (await client.head(f"/api/blobs/{digest}")).status_code == 200
    assert (await client.post(f"/api/blobs/{digest}", content=b"not even read")).status_code == 200


async def test_blob_upload_streams_chunks(client: httpx.AsyncClient) -> None:
    parts = [bytes([i]) * 300_000 for i in range(5)]

    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    response = await client.post(f"/api/blobs/{sha(b''.join(parts))}", content=body())
    assert response.status_code == 201


async def test_blob_digest_mismatch_and_bad_format(client: httpx.AsyncClient, tmp_path: Path) -> None:
    wrong = "sha256:" + "0" * 64
    response = await client.post(f"/api/blobs/{wrong}", content=b"data")
    assert response.status_code == 400
    assert response.json() == {"error": f'digest mismatch, expected "{wrong}", got "{sha(b"data")}"'}
    assert list((tmp_path / "blobs").iterdir()) == []
    for method in ("HEAD", "POST"):
        bad = await client.request(method, "/api/blobs/sha256:nothex")
        assert bad.status_code == 400
    assert (await client.post("/api/blobs/md5:abc", content=b"x")).json() == {"error": "invalid digest format"}


async def test_create_streams_ndjson_progress(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/create", json={"model": "smol", "from": str(smollm2_gguf_path())})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert response.text.endswith("\n") and "" not in response.text.split("\n")[:-1]
    assert lines[0] == {"status": "parsing GGUF"}
    assert lines[-1] == {"status": "success"}
    assert any(line["status"] == "writing manifest" for line in lines)


async def test_create_without_streaming_and_legacy_name(client: httpx.AsyncClient, tmp_path: Path) -> None:
    digest = sha(smollm2_gguf_path().read_bytes())
    upload = await client.post(f"/api/blobs/{digest}", content=smollm2_gguf_path().read_bytes())
    assert upload.status_code == 201
    response = await client.post("/api/create", json={"name": "up:1", "files": {"smol.gguf": digest},
                                                     "system": "Be brief.", "stream": False})
    assert response.status_code == 200
    assert response.json() == {"status": "success"}
    assert ModelStore(tmp_path).resolve("up:1").system == "Be brief."


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"model": "x"}, 400, "neither 'from' or 'files' was specified"),
    ({"model": "x", "from": "missing"}, 404, "model 'missing:latest' not found"),
    ({"model": "bad/name/with/slashes", "from": "x"}, 400, "invalid model name"),
    ({"model": "x", "files": {"/abs.gguf": "sha256:" + "0" * 64}}, 400, "file path must be relative"),
])
async def test_create_errors_keep_their_status(client: httpx.AsyncClient, body: dict[str, Any], status: int,
                                               error: str) -> None:
    response = await client.post("/api/create", json=body)
    assert response.status_code == status
    assert response.json() == {"error": error}


async def test_create_with_a_broken_gguf(client: httpx.AsyncClient, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 16)
    response = await client.post("/api/create", json={"model": "b", "from": str(broken), "stream": False})
    assert response.status_code == 400
    assert str(broken) in response.json()["error"]


async def test_empty_and_oversized_bodies(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/create", content=b"")).json() == {"error": "missing request body"}
    too_big = await client.post("/api/create", json={"model": "x", "system": "s" * 10_000})
    assert too_big.status_code == 413


async def test_copy(client: httpx.AsyncClient, tmp_path: Path) -> None:
    await client.post("/api/create", json={"model": "orig", "from": str(smollm2_gguf_path()), "stream": False})
    response = await client.post("/api/copy", json={"source": "orig", "destination": "user/backup:1"})
    assert response.status_code == 200 and response.content == b""
    store = ModelStore(tmp_path)
    assert store.resolve("user/backup:1").digest == store.resolve("orig").digest
    missing = await client.post("/api/copy", json={"source": "nope", "destination": "x"})
    assert missing.status_code == 404 and missing.json() == {"error": 'model "nope" not found'}
    invalid = await client.post("/api/copy", json={"source": "orig", "destination": "a b"})
    assert invalid.status_code == 400 and invalid.json() == {"error": "invalid model name"}
    assert (await client.post("/api/copy", json={"source": "orig"})).status_code == 400


async def test_delete_unloads_then_removes(tmp_path: Path) -> None:
    scheduler = RecordingScheduler(Settings())
    app, store = build_app(tmp_path, scheduler)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        await client.post("/api/create", json={"model": "gone", "from": str(smollm2_gguf_path()), "stream": False})
        response = await client.request("DELETE", "/api/delete", json={"model": "GONE"})
        assert response.status_code == 200 and response.content == b""
        assert scheduler.unloaded == ["gone:latest"]
        assert not store.exists("gone")
        assert [p for p in store.blobs_dir.iterdir()] == []  # every blob was only this model's
        again = await client.request("DELETE", "/api/delete", json={"name": "gone"})
        assert again.status_code == 404 and again.json() == {"error": "model 'gone:latest' not found"}


async def test_delete_of_a_model_that_is_not_loaded(client: httpx.AsyncClient, tmp_path: Path) -> None:
    await client.post("/api/create", json={"model": "x", "from": str(smollm2_gguf_path()), "stream": False})
    assert (await client.request("DELETE", "/api/delete", json={"model": "x"})).status_code == 200
    assert (await client.request("DELETE", "/api/delete", json={})).status_code == 400
