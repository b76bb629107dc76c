"""The soak script (bench/soak.py) end to end: one minute of mixed load on a real `ember serve` with a runner
kill -9 half-way. No request may get stuck, and every error must be one the kill caused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_a_one_minute_soak_with_a_runner_kill_is_clean(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, str(REPO / "bench" / "soak.py"), "--minutes", "1", "--kill-every", "0.5",
                          "--concurrency", "3", "--max-tokens", "16", "--out", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(next(tmp_path.glob("soak-*-1min.json")).read_text())
    assert result["stuck_requests"] == 0
    assert result["unexpected_errors"] == 0 and result["unexpected_5xx"] == 0
    assert len(result["kills"]) == 1 and result["kills"][0]["pids"], "the runner was found and killed"
    assert result["ok"] > 0 and result["requests_by_op"]["disconnect"] >= 0
    assert result["idle_at_end"]
    assert (tmp_path / next(tmp_path.glob("soak-*-1min.json")).name.replace(".json", ".png")).stat().st_size > 0
    after_kill = [r for r in result["requests"] if r[1] > result["kills"][0]["t"] + 5]
    assert any(r[3] for r in after_kill), "requests succeed again after the kill (a fresh runner was loaded)"
