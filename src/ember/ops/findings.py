"""What a doctor check returns (a Finding) and what it reads (a DoctorContext); see ember.ops.doctor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ember.config import Settings

PASS, INFO, WARN, FAIL = "PASS", "INFO", "WARN", "FAIL"
NOTHING_TO_DO = "nothing to do"
RANK = {PASS: 0, INFO: 1, WARN: 2, FAIL: 3}


@dataclass(frozen=True)
class Finding:
    check: str
    verdict: str
    detail: str
    fix: str = NOTHING_TO_DO

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "result": self.verdict, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class DoctorContext:
    """What the checks read: the settings, plus where /proc and /sys are (tests and containers may move them)."""

    settings: Settings
    model: str | None = None  # `ember doctor --model NAME`: size this model too, pulled or not
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")


Check = Callable[[DoctorContext], list[Finding]]
