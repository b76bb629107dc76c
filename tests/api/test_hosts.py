from __future__ import annotations

import httpx
import pytest

from ember.api.hosts import is_local_host
from tests.server_harness import RunningServer


@pytest.mark.parametrize(("host", "local"), [
    ("localhost:11434", True), ("127.0.0.1", True), ("[::1]:11434", True), ("10.1.2.3", True),
    ("ember.local", True), ("box.internal", True), ("app.localhost", True),
    ("evil.example.com", False), ("8.8.8.8", False), ("localhost.evil.com", False),
])
def test_local_host_names(host: str, local: bool) -> None:
    assert is_local_host(host) is local


def test_foreign_host_header_is_refused_on_loopback(server: RunningServer, client: httpx.Client) -> None:
    assert client.get("/api/version").status_code == 200
    refused = client.get("/api/version", headers={"host": "evil.example.com"})
    assert refused.status_code == 403 and "forbidden" in refused.json()["error"]


def test_cors_allows_local_origins_and_preflight(client: httpx.Client) -> None:
    allowed = client.options("/api/chat", headers={"origin": "http://localhost:3000",
                                                   "access-control-request-method": "POST"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    denied = client.get("/api/version", headers={"origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in denied.headers
