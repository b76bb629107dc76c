from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest_models import gemma_gguf_path
from tests.server_harness import RunningServer, start_server

BUNDLED = "smollm2:135m"
GEMMA = "gemma3-base:270m"


def create_from_gguf(client: httpx.Client, name: str, path: Path) -> None:
    response = client.post("/api/create", json={"model": name, "from": str(path), "stream": False})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One shared engine with the bundled model and Gemma 3 270M (base, no chat template)."""
    running = start_server(tmp_path_factory.mktemp("models"))
    with running.client() as client:
        create_from_gguf(client, GEMMA, gemma_gguf_path())
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c
