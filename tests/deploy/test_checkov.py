"""checkov's policy checks on the Helm chart (slow suite: checkov lives in its own venv, installed by
scripts/deploy-tools.sh): every finding left is one that docs/operations.md explains."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.helm_render import CHART, needs_helm

pytestmark = [pytest.mark.slow, needs_helm]

ROOT = Path(__file__).resolve().parents[2]


def _checkov() -> str | None:
    local = ROOT / ".tools" / "bin" / "checkov"
    return str(local) if local.exists() else shutil.which("checkov")


@pytest.mark.skipif(_checkov() is None, reason="checkov is not installed (scripts/deploy-tools.sh, slow suite)")
def test_every_checkov_finding_is_explained_in_the_runbook() -> None:
    # --skip-download: checkov otherwise calls a vendor API at start.
    result = subprocess.run([str(_checkov()), "--skip-download", "-d", str(CHART), "--framework", "helm",
                             "-o", "json", "--quiet"], capture_output=True, text=True, timeout=600,
                            env={"BC_SKIP_MAPPING": "TRUE", "PATH": os.environ["PATH"]})
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert reports and reports[0]["summary"]["parsing_errors"] == 0
    assert reports[0]["summary"]["passed"] >= 150  # the chart was really scanned
    failed = {check["check_id"] for r in reports for check in r["results"]["failed_checks"]}
    explained = set(re.findall(r"^\| (CKV_K8S_\d+) ", (ROOT / "docs" / "operations.md").read_text(), re.MULTILINE))
    assert failed <= explained, f"checkov findings not explained in docs/operations.md: {sorted(failed - explained)}"
