"""ollama-js (the official JavaScript client, which Karakeep uses) against a real Ember server: a chat with
`format` set to a JSON schema and a small num_predict gets JSON that parses and validates, streamed or not.

Needs node and npm; the package is installed once into ~/.cache/ember-tests (from npm's cache when offline).
Skips cleanly when node is absent or the package cannot be installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import BUNDLED
from tests.server_harness import RunningServer

OLLAMA_JS = "0.6.4"
SCRIPT = Path(__file__).parent / "js" / "ollama_format.mjs"


@pytest.fixture(scope="module")
def node_modules() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the ollama-js test")
    home = Path(os.environ.get("EMBER_TEST_CACHE", Path.home() / ".cache" / "ember-tests"))
    prefix = home / f"ollama-js-{OLLAMA_JS}"
    if not (prefix / "node_modules" / "ollama" / "package.json").exists():
        done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefer-offline", "--prefix",
                               str(prefix), f"ollama@{OLLAMA_JS}"], capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            pytest.skip(f"ollama-js {OLLAMA_JS} could not be installed: {done.stderr.strip()[-300:]}")
    return prefix / "node_modules"


@pytest.mark.parametrize("num_predict", [16, 80])
def test_karakeep_style_schema_chat_parses(server: RunningServer, node_modules: Path, num_predict: int) -> None:
    done = subprocess.run(["node", str(SCRIPT), str(node_modules), server.url, BUNDLED, str(num_predict)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    schema = result["schema"]
    jsonschema.validate(json.loads(result["streamed"]), schema)
    jsonschema.validate(json.loads(result["whole"]), schema)
    assert result["streamed"] == result["whole"] and result["streamedReason"] == result["wholeReason"]
    assert isinstance(json.loads(result["generated"]), dict)
    if result["streamedReason"] == "length":
        assert result["streamedClosedEarly"] is True
