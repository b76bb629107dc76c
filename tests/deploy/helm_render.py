"""Rendering the chart in deploy/helm/ember with the real `helm` binary, for the chart tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "ember"
VALUES = {"default": None, "multinode": CHART / "ci" / "multinode-values.yaml",
          "shared": CHART / "ci" / "shared-values.yaml"}
# Fixed keys, so rendered Secrets are the same on every run (left empty, the chart generates random ones).
FIXED_KEYS = ["--set", "auth.secretKey=test-secret-key", "--set", "auth.engineKey=test-engine-key"]

needs_helm = pytest.mark.skipif(shutil.which("helm") is None,
                                reason="helm is not installed (scripts/test.sh installs it: scripts/install-helm.sh)")


def helm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["helm", *args], capture_output=True, text=True, timeout=timeout)


def render(values: str = "default", *extra: str, release: str = "demo") -> list[dict[str, Any]]:
    args = ["template", release, str(CHART), "--namespace", "llm", *extra]
    if VALUES[values] is not None:
        args += ["-f", str(VALUES[values])]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found among {names}"
    return matches[0]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{o['kind']}/{o['metadata']['name']}", o["spec"]["template"]["spec"])
            for o in objects if o["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet")]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
