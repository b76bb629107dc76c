"""A real OCI registry for tests: Debian's ``docker-registry`` (distribution 2.8) on a loopback port.

Install with ``apt-get install docker-registry``. Without the binary the tests that use ``oci_registry``
are skipped, unless ``CI`` is set, where a missing registry is a failure.
Use it from a test module with ``from tests.registry_fixture import oci_registry``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class OciRegistry:
    host: str  # 127.0.0.1:<port>, the host part of model names that live there
    root: Path  # the registry's storage directory

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(storage: Path, port: int) -> str:
    # Loopback only, no auth, deletes allowed; the Debian default config binds :5000 and wants htpasswd.
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/v2/", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"docker-registry did not answer GET /v2/ within {READY_TIMEOUT_S}s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciRegistry]:
    binary = shutil.which("docker-registry")
    if binary is None:
        message = "docker-registry is not installed (apt-get install docker-registry)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    workdir = tmp_path_factory.mktemp("oci-registry")
    storage = workdir / "storage"
    port = _free_port()
    config = workdir / "config.yml"
    config.write_text(_config(storage, port))
    log = workdir / "registry.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    with open(log, "wb") as log_file:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log_file, stderr=subprocess.STDOUT,
                                   env=env)
    try:
        registry = OciRegistry(host=f"127.0.0.1:{port}", root=storage)
        _wait_ready(registry.url, process, log)
        yield registry
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
