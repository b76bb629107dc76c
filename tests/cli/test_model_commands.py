"""`ember create/cp/rm/push/pull` through click's runner against a real server and a real registry.

The server is this module's own (the commands change its store); EMBER_HOST points the CLI at it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from ember.cli.main import cli
from tests.conftest import BUNDLED
from tests.conftest_models import gemma_gguf_path
from tests.registry_fixture import OciRegistry, oci_registry  # noqa: F401 - the fixture is used by name
from tests.server_harness import RunningServer, start_server


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("cli-models"), context_length=512)
    yield running
    running.stop()


@pytest.fixture
def ember(own_server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("EMBER_HOST", own_server.settings.host)
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


def _lines(result: Result) -> list[str]:
    """Output lines as a terminal shows them: a carriage return overwrites what came before it."""
    return [line.rsplit("\r", 1)[-1] for line in result.output.split("\n") if line.strip()]


def _names(server: RunningServer) -> list[str]:
    with server.client() as client:
        return [m["name"] for m in client.get("/api/tags").json()["models"]]


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def test_create_from_modelfile_uploads_the_gguf(ember: Any, own_server: RunningServer, tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(f"# a base model with a persona\nFROM {gemma_gguf_path()}\nPARAMETER temperature 0.2\n"
                         "PARAMETER stop <end>\nSYSTEM You answer in one word.\n")
    result = ember("create", "cli/gemma", "-f", str(modelfile))
    assert result.exit_code == 0, result.output
    lines = _lines(result)
    digest = _digest(gemma_gguf_path())
    assert lines[0] == f"copying file {digest} 100%"
    assert "parsing GGUF" in lines and "writing manifest" in lines
    assert lines[-1] == "success"
    with own_server.client() as client:
        assert client.head(f"/api/blobs/{digest}").status_code == 200
    assert "cli/gemma:latest" in _names(own_server)

    parameters = ember("show", "cli/gemma", "--parameters")
    assert parameters.exit_code == 0
    values = dict(line.split(None, 1) for line in parameters.output.splitlines() if line.strip())
    assert values == {"temperature": "0.2", "stop": '"<end>"'}
    assert ember("show", "cli/gemma", "--system").output.strip() == "You answer in one word."
    summary = ember("show", "cli/gemma").output
    assert "architecture        gemma3" in summary and "temperature" in summary


def test_create_with_relative_from_and_from_a_printed_modelfile(ember: Any, own_server: RunningServer,
                                                               tmp_path: Path) -> None:
    # FROM ./x.gguf is relative to the Modelfile's directory, not to the working directory.
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "smol.gguf").symlink_to(_bundled_blob(own_server))
    (weights / "Modelfile").write_text("FROM ./smol.gguf\nSYSTEM Be brief.\n")
    made = ember("create", "cli/relative", "-f", str(weights / "Modelfile"))
    assert made.exit_code == 0 and _lines(made)[-1] == "success", made.output

    # `ember show --modelfile` prints FROM <blob path> (no .gguf suffix); feeding it back must work.
    printed = ember("show", "cli/relative", "--modelfile").output
    assert "\nFROM /" in printed and "\nSYSTEM Be brief.\n" in printed
    (tmp_path / "Printed").write_text(printed)
    again = ember("create", "cli/reprinted", "-f", str(tmp_path / "Printed"))
    assert again.exit_code == 0 and _lines(again)[-1] == "success", again.output
    assert ember("show", "cli/reprinted", "--system").output.strip() == "Be brief."
    with own_server.client() as client:
        models = {m["name"]: m for m in client.get("/api/tags").json()["models"]}
    assert models["cli/reprinted:latest"]["digest"] == models["cli/relative:latest"]["digest"]


def _bundled_blob(server: RunningServer) -> Path:
    return server.services.store.resolve(BUNDLED).model_path


@pytest.mark.parametrize(("text", "message"), [
    ("FROM smollm2:135m\nPARAMETER temperature 0.2\nPARAMETER bogus 1\n", "(line 3): unknown parameter 'bogus'"),
    ("FROM smollm2:135m\n\nPARAMETER num_ctx 0.5\n",
     "(line 3): invalid value '0.5' for parameter 'num_ctx': expected an integer"),
    ('FROM smollm2:135m\nSYSTEM """never closed\n', '(line 2): unterminated """ string'),
    ("FROM smollm2:135m\nFROB x\n", "(line 2): command must be one of"),
])
def test_create_with_a_modelfile_error_is_one_line(ember: Any, own_server: RunningServer, tmp_path: Path,
                                                   text: str, message: str) -> None:
    (tmp_path / "Modelfile").write_text(text)
    result = ember("create", "cli/broken", "-f", str(tmp_path / "Modelfile"))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: " + message), result.output
    assert "cli/broken:latest" not in _names(own_server)


def test_create_errors_from_the_server_and_missing_files(ember: Any, tmp_path: Path) -> None:
    (tmp_path / "Modelfile").write_text("FROM no-such-base-model\n")
    result = ember("create", "cli/orphan", "-f", str(tmp_path / "Modelfile"))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: model 'no-such-base-model:latest' not found"]

    missing = ember("create", "cli/orphan", "-f", str(tmp_path / "Nope"))
    assert missing.exit_code == 1 and missing.output.startswith("Error: no Modelfile at ")

    (tmp_path / "Adapter").write_text(f"FROM {BUNDLED}\nADAPTER ./lora.gguf\n")
    adapter = ember("create", "cli/orphan", "-f", str(tmp_path / "Adapter"))
    assert adapter.exit_code == 1
    assert adapter.output.strip().splitlines() == [f"Error: adapter file {tmp_path / 'lora.gguf'} does not exist"]


def test_cp_and_rm(ember: Any, own_server: RunningServer) -> None:
    copied = ember("cp", BUNDLED, "cli/copy:one")
    assert copied.exit_code == 0 and copied.output == f"copied '{BUNDLED}' to 'cli/copy:one'\n"
    assert ember("cp", "cli/copy:one", "cli/copy:two").exit_code == 0
    assert {"cli/copy:one", "cli/copy:two"} <= set(_names(own_server))

    removed = ember("rm", "cli/copy:one", "cli/copy:two")
    assert removed.exit_code == 0
    assert removed.output == "deleted 'cli/copy:one'\ndeleted 'cli/copy:two'\n"
    assert not {"cli/copy:one", "cli/copy:two"} & set(_names(own_server))
    assert BUNDLED in _names(own_server)

    again = ember("rm", "cli/copy:one")
    assert again.exit_code == 1
    assert again.output.strip().splitlines() == ["Error: model 'cli/copy:one' not found"]
    bad_copy = ember("cp", "cli/no-such", "cli/x")
    assert bad_copy.exit_code == 1 and "not found" in bad_copy.output


def test_push_and_pull(ember: Any, own_server: RunningServer, oci_registry: OciRegistry) -> None:  # noqa: F811
    remote = f"{oci_registry.host}/cli/smol:v1"
    assert ember("cp", BUNDLED, remote).exit_code == 0

    pushed = ember("push", remote, "--insecure")
    assert pushed.exit_code == 0, pushed.output
    lines = _lines(pushed)
    assert lines[0] == "retrieving manifest" and lines[-2:] == ["pushing manifest", "success"]
    manifest = json.loads(own_server.services.store.manifest_bytes(remote))
    blobs = {d["digest"].removeprefix("sha256:")[:12] for d in [*manifest["layers"], manifest["config"]]}
    # one finished bar per blob, each on its own line
    assert {line.split(":")[0].removeprefix("pushing ") for line in lines if "100%" in line} == blobs
    assert httpx.get(f"{oci_registry.url}/v2/cli/smol/tags/list").json()["tags"] == ["v1"]

    assert ember("rm", remote).exit_code == 0
    assert remote not in _names(own_server)
    pulled = ember("pull", remote, "--insecure")
    assert pulled.exit_code == 0, pulled.output
    lines = _lines(pulled)
    assert lines[0] == "pulling manifest" and lines[-1] == "success"
    assert "verifying sha256 digest" in lines and "writing manifest" in lines
    assert {line.split(":")[0].removeprefix("pulling ") for line in lines if "100%" in line} == blobs
    assert remote in ember("list").output

    insecure = ember("pull", f"http://{remote}")
    assert insecure.exit_code == 1 and insecure.output.startswith("Error: insecure protocol http")
    missing = ember("pull", f"{oci_registry.host}/cli/smol:nope", "--insecure")
    assert missing.exit_code == 1
    lines = _lines(missing)
    assert lines[0] == "pulling manifest" and lines[-1] == "Error: pull model manifest: file does not exist"
