"""EMBER_PRELOAD: models are pulled or created before the server reports ready."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.api.preload import PreloadFailed
from tests.conftest import BUNDLED
from tests.conftest_models import gemma_gguf_path
from tests.registry_fixture import OciRegistry, oci_registry  # noqa: F401 - the fixture is used by name
from tests.server_harness import start_server


def test_preload_creates_from_gguf_and_modelfile(tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"FROM {gemma_gguf_path()}\nSYSTEM You are terse.\nPARAMETER temperature 0.1\n")
    server = start_server(tmp_path / "models", preload=(f"pre/gemma:raw={gemma_gguf_path()}",
                                                        f"pre/gemma:terse={modelfile}"))
    try:
        with server.client() as client:
            names = {m["name"] for m in client.get("/api/tags").json()["models"]}
            assert {"pre/gemma:raw", "pre/gemma:terse", BUNDLED} <= names
            shown = client.post("/api/show", json={"model": "pre/gemma:terse"}).json()
            assert shown["system"] == "You are terse." and "temperature" in shown["parameters"]
    finally:
        server.stop()


def test_preload_pulls_from_a_registry(tmp_path: Path, oci_registry: OciRegistry) -> None:  # noqa: F811
    remote = f"{oci_registry.url.removeprefix('http://')}/preload/smol:v1"
    source = start_server(tmp_path / "source")
    try:
        with source.client() as client:
            assert client.post("/api/copy", json={"source": BUNDLED, "destination": remote}).status_code == 200
            pushed = client.post("/api/push", json={"model": remote, "insecure": True, "stream": False})
            assert pushed.json()["status"] == "success", pushed.text
    finally:
        source.stop()
    target = start_server(tmp_path / "target", preload=(f"http://{remote}",), bundled_model="")
    try:
        with target.client() as client:
            names = [m["name"] for m in client.get("/api/tags").json()["models"]]
            assert names == [remote]
            reply = client.post("/api/generate", json={"model": remote, "prompt": "Hi", "stream": False,
                                                       "options": {"num_predict": 2}})
            assert reply.status_code == 200
    finally:
        target.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_failed_preload_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises((PreloadFailed, RuntimeError)):
        start_server(tmp_path / "models", preload=(f"broken:1={tmp_path / 'missing.gguf'}",))
