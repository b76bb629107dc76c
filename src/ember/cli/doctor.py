"""`ember doctor`: print what ember.ops.doctor finds, each finding with its fix; exit 1 if anything FAILs."""

from __future__ import annotations

import json
import sys

import click

from ember.config import Settings
from ember.ops.doctor import FAIL, NOTHING_TO_DO, PASS, DoctorContext, DoctorReport, all_checks, run_doctor


@click.command()
@click.option("--model", help="Also size this model: from the store, or from its registry manifest before a pull.")
@click.option("--check", "only", multiple=True, type=click.Choice(list(all_checks())),
              help="Run only this check (repeatable); default: all.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as one JSON object.")
def doctor(model: str | None, only: tuple[str, ...], as_json: bool) -> None:
    """Diagnose this host for Ember: temp dir, ports, exposure, SELinux, memory, disk, models, services.

    Reads the same settings as `ember serve` (EMBER_*/OLLAMA_* variables), so run it as the service user with
    the service's environment file. Exit 0 when nothing FAILs, 1 otherwise.
    """
    wanted = list(only) or [name for name in all_checks() if name != "model" or model]
    report = run_doctor(DoctorContext(Settings.from_env(), model=model), wanted)
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else render(report))
    sys.exit(report.exit_code)


def render(report: DoctorReport) -> str:
    lines = []
    for finding in report.findings:
        lines.append(f"{finding.verdict:<5} {finding.check:<11} {finding.detail}")
        if finding.verdict != PASS and finding.fix != NOTHING_TO_DO:
            lines.append(f"{'':<5} {'':<11} fix: {finding.fix}")
    lines.append(f"{'FAIL' if report.count(FAIL) else 'OK'}: {report.summary}")
    return "\n".join(lines)


COMMANDS = [doctor]
