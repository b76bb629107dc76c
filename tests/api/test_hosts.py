from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ember.api.app import create_app
from ember.api.hosts import is_local_host
from ember.config import Settings


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The real engine app in process, bound (as settings say) to loopback; no model is needed."""
    app = create_app(Settings.from_env({}, host="127.0.0.1:11434", models_dir=tmp_path))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:11434") as c:
        yield c


@pytest.mark.parametrize(("host", "local"), [
    ("localhost:11434", True), ("127.0.0.1", True), ("[::1]:11434", True), ("10.1.2.3", True),
    ("ember.local", True), ("box.internal", True), ("app.localhost", True),
    ("evil.example.com", False), ("8.8.8.8", False), ("localhost.evil.com", False),
])
def test_local_host_names(host: str, local: bool) -> None:
    assert is_local_host(host) is local


async def test_foreign_host_header_is_refused_on_loopback(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/version")).status_code == 200
    refused = await client.get("/api/version", headers={"host": "evil.example.com"})
    assert refused.status_code == 403 and "forbidden" in refused.json()["error"]


async def test_cors_allows_local_origins_and_preflight(client: httpx.AsyncClient) -> None:
    allowed = await client.options("/api/chat", headers={"origin": "http://localhost:3000",
                                                   "access-control-request-method": "POST"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    denied = await client.get("/api/version", headers={"origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in denied.headers
