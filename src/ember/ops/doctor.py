"""`ember doctor`: diagnose, before they bite, the failure modes operators keep runbooks for.

Each check is a function ``(DoctorContext) -> list[Finding]``; every finding carries a verdict and a fix line.
FAIL means Ember will not work as configured (exit 1), WARN that it works but something will hurt, INFO a
fact worth knowing, PASS that the check found nothing. The checks live in ``checks_*`` modules by subject.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ember.ops.findings import FAIL, INFO, NOTHING_TO_DO, PASS, RANK, WARN, Check, DoctorContext, Finding

__all__ = ["FAIL", "INFO", "NOTHING_TO_DO", "PASS", "WARN", "DoctorContext", "DoctorReport", "Finding",
           "run_doctor"]

@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.verdict == FAIL for f in self.findings)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def count(self, verdict: str) -> int:
        return sum(1 for f in self.findings if f.verdict == verdict)

    @property
    def summary(self) -> str:
        counts = ", ".join(f"{self.count(v)} {v}" for v in (FAIL, WARN, INFO, PASS))
        return f"{'no failures' if self.ok else 'problems found'} ({counts})"

    def to_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "fail", "exit_code": self.exit_code, "summary": self.summary,
                "findings": [f.to_json() for f in self.findings]}


def all_checks() -> dict[str, Check]:
    """Every check by name, in the order they run."""
    from ember.ops import checks_models, checks_network, checks_system

    return {**checks_system.CHECKS, **checks_network.CHECKS, **checks_models.CHECKS}


def run_doctor(context: DoctorContext, only: Iterable[str] = ()) -> DoctorReport:
    checks = all_checks()
    wanted = list(only) or list(checks)
    unknown = [name for name in wanted if name not in checks]
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}; choose from {', '.join(checks)}")
    report = DoctorReport()
    for name in wanted:
        try:
            report.findings.extend(checks[name](context))
        except Exception as exc:  # one broken check must not hide the others' findings
            report.findings.append(Finding(name, WARN, f"the check itself failed: {type(exc).__name__}: {exc}",
                                           "report this as a bug in ember doctor"))
    return report


def worst(findings: Iterable[Finding]) -> str:
    return max((f.verdict for f in findings), key=RANK.__getitem__, default=PASS)
