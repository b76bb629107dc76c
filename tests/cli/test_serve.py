"""`ember serve --role ...` as a real process: both roles in one process, and the safe-bind refusal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server_harness import free_port


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {**os.environ, "EMBER_HOME": str(tmp_path / "home"), "EMBER_MODELS": str(tmp_path / "models"),
            "EMBER_LOG_LEVEL": "info", **values}


def _wait_for(url: str, deadline: float) -> httpx.Response:
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_role_all_runs_engine_and_web_in_one_process(tmp_path: Path) -> None:
    engine, web = free_port(), free_port()
    env = _env(tmp_path, EMBER_HOST=f"127.0.0.1:{engine}", EMBER_WEB_HOST=f"127.0.0.1:{web}",
               EMBER_ENGINE_KEY="shared-secret-all-in-one")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "ember.cli.main", "serve", "--role", "all"], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        assert _wait_for(f"http://127.0.0.1:{engine}/api/version", deadline).status_code == 401  # needs the key
        while (ready := _wait_for(f"http://127.0.0.1:{web}/readyz", deadline)).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.2)
        assert {c["name"] for c in ready.json()["checks"]} == {"database", "engines"}
        assert httpx.get(f"http://127.0.0.1:{web}/api/version").status_code == 401  # the web role needs a key too
        assert "/setup?token=" in log.read_text()  # no admin yet: the setup link was printed
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]


def test_engine_off_loopback_without_key_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "ember.cli.main", "serve", "--role", "engine",
                             "--host", f"0.0.0.0:{free_port()}"], env=_env(tmp_path), capture_output=True,
                            timeout=60)
    assert result.returncode != 0
    assert b"EMBER_ENGINE_KEY" in result.stderr and b"Traceback" not in result.stderr
