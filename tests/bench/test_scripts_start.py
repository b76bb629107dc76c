"""Every benchmark script starts and explains itself: a broken import or option surfaces here, not on the
day someone measures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if 'if __name__ == "__main__"' in p.read_text())


def test_the_scripts_are_found() -> None:
    assert {"run.py", "side_by_side.py", "decode_ab.py", "engine_features.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script: str) -> None:
    run = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                         timeout=60, cwd=BENCH)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("usage:")
