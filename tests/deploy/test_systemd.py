"""The systemd units in deploy/systemd: they parse without a single warning, their hardening scores low in
`systemd-analyze security`, the sysusers snippet makes the service user, the environment file names only real
settings, and a real generation works with TMPDIR on a noexec mount (what PrivateTmp= or a hardened /tmp gives).

systemd is not PID 1 here, so the units cannot be started; `systemd-analyze` checks them offline.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import httpx
import pytest

from ember.config import Settings
from tests.conftest import BUNDLED
from tests.server_harness import free_port

UNITS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
UNITS = ("ember.service", "ember-engine.service", "ember-web.service")
INSTALLED_EMBER = "/opt/ember/bin/ember"
# Documented in docs/operations.md; each unit scores 1.2 today (0 = fully locked down, 10 = no hardening).
EXPOSURE_BOUND = 2.0

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (Debian package `systemd`)")


def _units_with_real_binary(tmp_path: Path) -> list[Path]:
    """Copies of the units whose ExecStart points at this checkout's `ember` (verify checks the file exists)."""
    ember = Path(sys.executable).parent / "ember"
    assert ember.exists(), f"{ember} missing: install the package in this venv"
    copies = []
    for name in UNITS:
        text = (UNITS_DIR / name).read_text()
        assert f"ExecStart={INSTALLED_EMBER} serve" in text
        copy = tmp_path / name
        copy.write_text(text.replace(INSTALLED_EMBER, str(ember)))
        copies.append(copy)
    return copies


def _verify(units: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", *[str(u) for u in units]], capture_output=True, text=True,
                          timeout=60, cwd=units[0].parent)


@needs_analyze
def test_units_verify_without_any_warning(tmp_path: Path) -> None:
    result = _verify(_units_with_real_binary(tmp_path))
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings with rc 0, so any output at all is a failure.
    assert result.stdout + result.stderr == ""


@needs_analyze
def test_verify_check_catches_a_warning(tmp_path: Path) -> None:
    """The check above would see a typo: a misspelt key gives output although the exit status stays 0."""
    unit = _units_with_real_binary(tmp_path)[0]
    unit.write_text(unit.read_text().replace("NoNewPrivileges=true", "NoNewPrivilege=true"))
    result = _verify([unit])
    assert "Unknown key" in result.stdout + result.stderr


@needs_analyze
@pytest.mark.parametrize("name", UNITS)
def test_exposure_score_is_low(tmp_path: Path, name: str) -> None:
    unit = next(u for u in _units_with_real_binary(tmp_path) if u.name == name)
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) < EXPOSURE_BOUND, result.stdout


@needs_analyze
def test_units_keep_what_ember_needs() -> None:
    """Hardening that would break Ember is absent; the settings the runbook relies on are present."""
    for name in UNITS:
        text = (UNITS_DIR / name).read_text()
        keys = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
        assert keys["User"] == "ember" and keys["Restart"] == "on-failure"
        assert keys["StateDirectory"] == "ember" and keys["ProtectSystem"] == "strict"
        assert keys["PrivateTmp"] == "true" and keys["NoNewPrivileges"] == "true"
        assert "MemoryDenyWriteExecute" not in keys and "ProcSubset" not in keys
    engine = (UNITS_DIR / "ember-engine.service").read_text()
    assert "OOMPolicy=continue" in engine and "ReadWritePaths=-/srv/ember" in engine


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
def test_sysusers_snippet_creates_a_nologin_system_user(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        (tmp_path / "etc" / name).write_text("")
    result = subprocess.run(["systemd-sysusers", f"--root={tmp_path}", str(UNITS_DIR / "sysusers-ember.conf")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    entry = next(line for line in (tmp_path / "etc/passwd").read_text().splitlines() if line.startswith("ember:"))
    _, _, uid, gid, _, home, shell = entry.split(":")
    assert int(uid) < 1000 and uid == gid, entry  # a system user with its own group
    assert home == "/var/lib/ember" and shell.endswith("nologin")


def test_environment_file_names_only_real_settings() -> None:
    known = {env for f in fields(Settings) for env in f.metadata["setting"].env}
    names = re.findall(r"^#?([A-Z][A-Z0-9_]+)=", (UNITS_DIR / "ember.env.example").read_text(), re.MULTILINE)
    assert names, "no settings found"
    assert set(names) <= known, set(names) - known


@contextlib.contextmanager
def _noexec_tmpfs(path: Path) -> Iterator[Path]:
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,nosuid,nodev,size=64m", "tmpfs", str(path)],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and mount permission): {result.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def _runner_pids(server_pid: int) -> list[int]:
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def test_generation_works_with_tmpdir_on_a_noexec_mount(tmp_path: Path) -> None:
    with _noexec_tmpfs(tmp_path / "noexec-tmp") as scratch:
        probe = scratch / "probe.sh"
        probe.write_text("#!/bin/sh\nexit 0\n")
        probe.chmod(0o755)
        with pytest.raises(PermissionError):  # the mount really forbids exec
            subprocess.run([str(probe)], timeout=10)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EMBER_", "OLLAMA_"))}
        env.update(TMPDIR=str(scratch), EMBER_TMPDIR=str(scratch), EMBER_HOST=f"127.0.0.1:{port}",
                   EMBER_MODELS=str(tmp_path / "models"), EMBER_HOME=str(tmp_path / "home"),
                   EMBER_NUM_THREAD="2", EMBER_CONTEXT_LENGTH="512", EMBER_ROLE="engine")
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen([sys.executable, "-m", "ember.cli.main", "serve"], env=env, stdout=out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_answering(server, url, log)
            response = httpx.post(url + "/api/generate", timeout=120, json={
                "model": BUNDLED, "prompt": "The sky is", "stream": False, "options": {"num_predict": 4}})
            assert response.status_code == 200, response.text + log.read_text()
            assert response.json()["eval_count"] > 0
            runners = _runner_pids(server.pid)
            assert runners, "the generation ran in no runner process"
            environ = Path(f"/proc/{runners[0]}/environ").read_bytes().split(b"\0")
            assert f"TMPDIR={scratch}".encode() in environ  # the runner really had the noexec TMPDIR
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=15)


def _wait_until_answering(server: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"ember serve exited with {server.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"ember serve did not answer within 60 s:\n{log.read_text()}")
