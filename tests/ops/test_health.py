"""`ember health` against real servers: one test per exit code, each caused for real."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ember.cli.main import cli
from tests.conftest import BUNDLED
from tests.server_harness import RunningServer, free_port, start_server


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("models"))
    yield running
    running.stop()


@pytest.fixture
def watched_engine(tmp_path: Path) -> Iterator[RunningServer]:
    """An engine whose watchdog gives up on a silent busy runner after 5 s (long enough for a busy CI box)."""
    running = start_server(tmp_path / "models", stall_timeout=5.0)
    yield running
    running.stop()


def health(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["health", "--url", url, *args], catch_exceptions=False)


def verdicts(result: Result) -> list[tuple[str, str]]:
    return [(line.split()[1], line.split()[0]) for line in result.output.splitlines()[:-1]]


def test_healthy_server_exits_0_with_every_check_passed(engine: RunningServer) -> None:
    result = health(engine.url, "--model", BUNDLED)
    assert result.exit_code == 0, result.output
    assert verdicts(result) == [("api", "PASS"), ("model", "PASS"), ("generation", "PASS")]
    assert result.output.splitlines()[-1].startswith(f"healthy (exit 0): {BUNDLED} at {engine.url}")
    assert "generation took" in result.output


def test_json_output_has_the_checks_and_the_time(engine: RunningServer) -> None:
    result = health(engine.url, "--model", BUNDLED, "--json")
    report = json.loads(result.output)
    assert result.exit_code == 0 and report["exit_code"] == 0 and report["status"] == "ok"
    assert [c["name"] for c in report["checks"]] == ["api", "model", "generation"]
    assert 0 < report["generation_seconds"] < 30


def test_nothing_listening_exits_1(tmp_path: Path) -> None:
    result = health(f"http://127.0.0.1:{free_port()}", "--model", BUNDLED, "--timeout", "5")
    assert result.exit_code == 1, result.output
    assert verdicts(result) == [("api", "FAIL")]
    assert "could not connect" in result.output and "API unreachable (exit 1)" in result.output


def test_unknown_model_exits_2(engine: RunningServer) -> None:
    result = health(engine.url, "--model", "no-such-model:1b")
    assert result.exit_code == 2, result.output
    assert verdicts(result) == [("api", "PASS"), ("model", "FAIL")]
    assert "not found" in result.output and "model not available (exit 2)" in result.output


def test_too_small_max_seconds_exits_4_with_a_warning(engine: RunningServer) -> None:
    result = health(engine.url, "--model", BUNDLED, "--max-seconds", "0.001")
    assert result.exit_code == 4, result.output
    assert verdicts(result)[-1] == ("generation", "WARN")
    assert "slower than --max-seconds 0.001" in result.output
    assert "performance degraded (exit 4)" in result.output


def test_wedged_runner_exits_3(watched_engine: RunningServer) -> None:
    engine = watched_engine
    with engine.client() as client:  # load the model, then freeze its runner: the watchdog kills it after 5 s
        assert client.post("/api/generate", json={"model": BUNDLED}).status_code == 200
    loaded = next(x for x in engine.services.scheduler.loaded.values() if x.model.name.display == BUNDLED)
    pid = loaded.runner.pid  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGSTOP)
    try:
        result = health(engine.url, "--model", BUNDLED, "--timeout", "60")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert result.exit_code == 3, result.output
    assert verdicts(result) == [("api", "PASS"), ("model", "PASS"), ("generation", "FAIL")]
    assert "stopped responding" in result.output and "inference failed (exit 3)" in result.output


class _KeyedServer(BaseHTTPRequestHandler):
    """Answers /api/version only with the right bearer key, and knows no models (stands in for a keyed gateway)."""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != "Bearer sk-test":
            self._answer(401, {"error": "missing or invalid API key"})
        else:
            self._answer(200, {"version": "0.0.0"})

    def do_POST(self) -> None:
        self._answer(404, {"error": "model 'x' not found"})

    def _answer(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_the_key_is_sent_as_a_bearer_token() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeyedServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        refused = health(url, "--model", "x")
        allowed = health(url, "--model", "x", "--key", "sk-test")
    finally:
        server.shutdown()
    assert refused.exit_code == 1 and "HTTP 401" in refused.output
    assert allowed.exit_code == 2 and verdicts(allowed) == [("api", "PASS"), ("model", "FAIL")]
