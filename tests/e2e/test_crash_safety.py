"""kill -9 of a real `ember serve` process in the middle of store writes, then a restart on the same store.

Each test runs the server as a child process (`python -m ember.cli.main serve`), kills it with SIGKILL at
a chosen moment (mid blob upload, mid create, mid pull), starts it again on the same models directory and
checks what the store guarantees (docs/store.md): only complete models are listed, a listed model loads,
leftover temp files are cleaned by the restart, and an interrupted download resumes to the right bytes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BUNDLED
from tests.conftest_models import gemma_gguf_path, smollm2_gguf_path
from tests.registry_fixture import OciRegistry, oci_registry  # noqa: F401 - the fixture is used by name
from tests.server_harness import free_port

pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 15.0
GENERATE = {"prompt": "The sky is", "raw": True, "stream": False, "options": {"num_predict": 2}}


@functools.cache
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gemma_digest() -> str:
    return "sha256:" + _sha256(gemma_gguf_path())


def _live_group_members(pgid: int) -> list[int]:
    """Processes (zombies excluded) still in process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


class ServerProcess:
    """`ember serve` as a child process in its own session, restartable on the same models directory."""

    def __init__(self, models_dir: Path, log_dir: Path, **env: str) -> None:
        self.models_dir = models_dir
        self.log_dir = log_dir
        self.extra_env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        self.groups: list[int] = []  # every session we started, to check that no runner outlives its server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def blobs(self) -> Path:
        return self.models_dir / "blobs"

    def client(self, timeout: float = 120.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.port = free_port()
        self.starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBER_", "OLLAMA_"))}
        env.update(EMBER_HOST=f"127.0.0.1:{self.port}", EMBER_MODELS=str(self.models_dir), EMBER_NUM_THREAD="2",
                   EMBER_CONTEXT_LENGTH="512", EMBER_LOG_LEVEL="info", **self.extra_env)
        self.log = self.log_dir / f"serve-{self.starts}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "ember.cli.main", "serve", "--role", "engine"],
                                            env=env,
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        self.groups.append(self.process.pid)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"ember serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"ember serve did not answer GET / within {READY_TIMEOUT_S}s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the server process only (not its runners): a crash, not a shutdown."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=EXIT_TIMEOUT_S)
        assert self.process.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for group in self.groups:  # never leave a stray runner behind, whatever the test found
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)

    def assert_no_orphans(self) -> None:
        """Runners of killed servers see their socket close and exit; none may keep running."""
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        current = self.pid if self.process is not None and self.process.poll() is None else None
        while True:
            left = {g: _live_group_members(g) for g in self.groups if g != current}
            left = {g: pids for g, pids in left.items() if pids}
            if not left:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"processes of killed servers still running: {left}")
            time.sleep(0.1)

    def temp_files(self) -> list[Path]:
        return sorted(self.blobs.glob(".tmp-*"))

    def tags(self) -> list[str]:
        with self.client() as client:
            response = client.get("/api/tags")
        assert response.status_code == 200
        return sorted(m["name"] for m in response.json()["models"])


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """A factory of ServerProcess objects, all stopped (and their process groups killed) at teardown."""
    made: list[ServerProcess] = []

    def make(**env: str) -> ServerProcess:
        server = ServerProcess(tmp_path / "models", tmp_path, **env)
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.stop()


def _http_request(method: str, path: str, body: bytes, port: int, content_type: str = "application/json",
                  length: int | None = None) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n").encode() + body


def _wait_for(predicate: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _upload(server: ServerProcess, path: Path, digest: str) -> int:
    with server.client() as client, path.open("rb") as fh:
        return client.post(f"/api/blobs/{digest}", content=fh).status_code


def _assert_answers(server: ServerProcess, model: str) -> None:
    with server.client() as client:
        response = client.post("/api/generate", json={"model": model, **GENERATE})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["done"] is True and body["eval_count"] >= 1, body


def _assert_manifest_blobs_valid(server: ServerProcess, model: str, *, hash_limit: int = 1 << 30) -> dict[str, Any]:
    """Every blob the model's manifest names exists with the declared size and (up to a size) the right hash."""
    with server.client() as client:
        digest = next(m["digest"] for m in client.get("/api/tags").json()["models"] if m["name"] == model)
    manifest_file = next(p for p in (server.models_dir / "manifests").glob("*/*/*/*")
                         if hashlib.sha256(p.read_bytes()).hexdigest() == digest)
    manifest: dict[str, Any] = json.loads(manifest_file.read_bytes())
    for descriptor in [*manifest["layers"], manifest["config"]]:
        blob = server.blobs / descriptor["digest"].replace(":", "-")
        assert blob.is_file(), f"{model}: {descriptor['digest']} missing"
        assert blob.stat().st_size == descriptor["size"]
        if descriptor["size"] <= hash_limit:
            assert "sha256:" + _sha256(blob) == descriptor["digest"]
    return manifest


# ----------------------------------------------------------------------------------- a. blob upload


def test_kill_during_blob_upload_leaves_no_blob_and_restart_cleans_temp(serve: Any) -> None:
    gguf, digest = gemma_gguf_path(), gemma_digest()
    size = gguf.stat().st_size
    server: ServerProcess = serve()
    with socket.create_connection(("127.0.0.1", server.port)) as sock, gguf.open("rb") as fh:
        sock.sendall(_http_request("POST", f"/api/blobs/{digest}", b"", server.port,
                                   content_type="application/octet-stream", length=size))
        sock.sendall(fh.read(24 << 20))  # about a tenth of the file, then the server dies
        temp = _wait_for(lambda: [p for p in server.temp_files() if p.stat().st_size >= 8 << 20],
                         "the upload's temp file to grow")
        assert temp[0].name.startswith(f".tmp-{server.pid}-")
        server.kill()
    assert temp[0].exists(), "the killed upload's temp file should be on disk until the restart cleans it"
    assert not (server.blobs / digest.replace(":", "-")).exists()

    server.start()
    assert server.temp_files() == []
    assert server.tags() == [BUNDLED]
    with server.client() as client:
        assert client.head(f"/api/blobs/{digest}").status_code == 404

    assert _upload(server, gguf, digest) == 201
    with server.client() as client:
        created = client.post("/api/create", json={"model": "crash/uploaded", "files": {"gemma.gguf": digest},
                                                   "stream": False})
        assert created.status_code == 200 and created.json()["status"] == "success", created.text
        assert client.head(f"/api/blobs/{digest}").status_code == 200
    assert server.tags() == sorted([BUNDLED, "crash/uploaded:latest"])
    _assert_answers(server, "crash/uploaded:latest")


# ----------------------------------------------------------------------------------------- b. create

CREATE_FIELDS = {"template": "{{ .System }} {{ .Prompt }}", "parameters": {"temperature": 0.3, "stop": ["\n\n"]}}
# When to kill: a delay after the request is sent (the server is still validating the GGUF, ~0.5 s), or as
# soon as a progress line has arrived (layers being written, the manifest being written, done).
KILL_POINTS: list[tuple[str, Any]] = [("delay", 0.0), ("delay", 0.02), ("delay", 0.1), ("line", b"parsing GGUF"),
                                      ("line", b"creating new layer"), ("line", b"writing manifest"),
                                      ("line", b'"success"')]


def _kill_at(server: ServerProcess, sock: socket.socket, kind: str, when: Any) -> None:
    if kind == "delay":
        time.sleep(when)
    else:
        received = b""
        while when not in received:
            chunk = sock.recv(65536)
            assert chunk, f"create ended before {when!r}: {received!r}"
            received += chunk
    server.kill()


def test_kill_during_create_never_lists_a_broken_model(serve: Any) -> None:
    digest = gemma_digest()
    server: ServerProcess = serve()
    assert _upload(server, gemma_gguf_path(), digest) == 201
    outcomes: list[tuple[str, bool]] = []
    for i, (kind, when) in enumerate(KILL_POINTS):
        name = f"crash/create-{i}:latest"
        system = f"You finish sentences ({i})."  # a new layer for every create
        body = json.dumps({"model": name, "from": digest, "system": system, "stream": True,
                           **CREATE_FIELDS}).encode()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(_http_request("POST", "/api/create", body, server.port))
            _kill_at(server, sock, kind, when)
        server.start()
        assert server.temp_files() == [], f"{kind} {when!r}: temp files survived the restart"
        listed = name in server.tags()
        outcomes.append((f"{kind} {when!r}", listed))
        with server.client() as client:
            shown = client.post("/api/show", json={"model": name})
        if listed:
            assert shown.status_code == 200, shown.text
            assert shown.json()["system"] == system
            assert "temperature" in shown.json()["parameters"]
            _assert_manifest_blobs_valid(server, name, hash_limit=1 << 20)
            _assert_answers(server, name)
        else:
            assert shown.status_code == 404, shown.text
    assert outcomes[0][1] is False and outcomes[-1][1] is True, outcomes  # the two ends are not in doubt
    server.assert_no_orphans()


# ------------------------------------------------------------------------------------------- c. pull


class ThrottledProxy:
    """A TCP relay in front of the registry. While ``slow`` is set, registry-to-Ember bytes trickle.

    The registry stays real; the relay only makes a local download slow enough to be killed half-way, and
    counts the bytes sent to Ember (to tell a resumed download from a fresh one).
    """

    PIECE = 64 * 1024
    PAUSE_S = 0.008  # about 8 MB/s while slow

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.slow = threading.Event()
        self.downstream = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while data := src.recv(1 << 18):
                for start in range(0, len(data), self.PIECE):
                    piece = data[start:start + self.PIECE]
                    if downstream and self.slow.is_set():
                        time.sleep(self.PAUSE_S)
                    dst.sendall(piece)
                    if downstream:
                        with self._lock:
                            self.downstream += len(piece)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()


@pytest.fixture
def proxy(oci_registry: OciRegistry) -> Iterator[ThrottledProxy]:  # noqa: F811 - pytest fixture by name
    host, port = oci_registry.host.split(":")
    relay = ThrottledProxy((host, int(port)))
    yield relay
    relay.close()


def test_kill_during_pull_resumes_to_a_verified_model(serve: Any, proxy: ThrottledProxy,
                                                      oci_registry: OciRegistry) -> None:  # noqa: F811
    # No bundled model here: its blob would already be in the store and the pull would download nothing.
    # ('""' because an empty EMBER_BUNDLED_MODEL is read as unset.)
    server: ServerProcess = serve(EMBER_BUNDLED_MODEL='""')
    remote = f"127.0.0.1:{proxy.port}/test/smol:v1"
    with server.client() as client:
        assert server.tags() == []
        made = client.post("/api/create", json={"model": BUNDLED, "from": str(smollm2_gguf_path()), "stream": False})
        assert made.status_code == 200, made.text
        assert client.post("/api/copy", json={"source": BUNDLED, "destination": remote}).status_code == 200
        pushed = client.post("/api/push", json={"model": remote, "insecure": True, "stream": False})
        assert pushed.status_code == 200 and pushed.json()["status"] == "success", pushed.text
        for name in (BUNDLED, remote):
            assert client.request("DELETE", "/api/delete", json={"model": name}).status_code == 200
    model_digest = "sha256:" + _sha256(smollm2_gguf_path())
    model_blob = server.blobs / model_digest.replace(":", "-")
    model_size = smollm2_gguf_path().stat().st_size
    assert not model_blob.exists(), "deleting the last model using the blob should remove it"

    proxy.slow.set()
    killed_at = 0
    with server.client() as client, client.stream("POST", "/api/pull",
                                                  json={"model": remote, "insecure": True}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            event = json.loads(line)
            assert "error" not in event, event
            if event.get("digest") == model_digest and event.get("completed", 0) > 0:
                killed_at = event["completed"]
                server.kill()
                break
    assert 0 < killed_at < model_size, killed_at

    server.start()
    assert server.tags() == []
    partial = server.blobs / (model_digest.replace(":", "-") + "-partial")
    assert partial.is_file(), "init must keep a resumable download"
    resumed_from = partial.stat().st_size
    assert 0 < resumed_from < model_size
    assert server.temp_files() == []

    proxy.slow.clear()
    proxy.downstream = 0
    with server.client() as client:
        events = []
        with client.stream("POST", "/api/pull", json={"model": remote, "insecure": True}) as response:
            assert response.status_code == 200
            events = [json.loads(line) for line in response.iter_lines() if line.strip()]
        assert all("error" not in e for e in events), events[-1]
        assert events[-1] == {"status": "success"}
        first_model_event = next(e for e in events if e.get("digest") == model_digest)
        assert first_model_event["completed"] == resumed_from  # it continued where the partial file ended
        assert server.tags() == [remote]
        manifest = _assert_manifest_blobs_valid(server, remote)
        assert any(layer["digest"] == model_digest for layer in manifest["layers"])
        assert not list(server.blobs.glob("*-partial*"))
        # the relay sent Ember less than the model layer's size: the download was resumed, not restarted
        assert proxy.downstream < model_size, (proxy.downstream, model_size)

        registry_manifest = httpx.get(f"{oci_registry.url}/v2/test/smol/manifests/v1", headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json"}).content
        local = next(m for m in client.get("/api/tags").json()["models"] if m["name"] == remote)
        assert local["digest"] == hashlib.sha256(registry_manifest).hexdigest()

        reply = client.post("/api/chat", json={"model": remote, "stream": False, "options": {"num_predict": 8},
                                               "messages": [{"role": "user", "content": "Say hello."}]})
        assert reply.status_code == 200, reply.text
        assert reply.json()["message"]["role"] == "assistant" and reply.json()["message"]["content"]
    server.assert_no_orphans()
