"""`ember health`: check a running server end to end; the exit code says what is wrong (see ember.ops.health)."""

from __future__ import annotations

import json
import sys

import click

from ember.client import Client
from ember.config import Settings
from ember.ops.health import HealthReport, check_health

_EXIT_HELP = """\b
Exit codes:
  0  healthy
  1  API unreachable
  2  model not available
  3  inference failed
  4  performance degraded (slower than --max-seconds)"""


@click.command(epilog=_EXIT_HELP)
@click.option("--model", help="Model to check (default: the bundled model, EMBER_BUNDLED_MODEL).")
@click.option("--url", help="Server to check, engine or web role (default: EMBER_HOST/OLLAMA_HOST).")
@click.option("--key", help="API key, sent as 'Authorization: Bearer KEY' (default: EMBER_ENGINE_KEY if set).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=120.0, show_default=True,
              help="Seconds to wait for each request; a generation with no answer by then fails (exit 3).")
@click.option("--max-seconds", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="A generation slower than this (model load included) is degraded (exit 4).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def health(model: str | None, url: str | None, key: str | None, timeout: float, max_seconds: float,
           as_json: bool) -> None:
    """Check that the server answers, has the model, and generates in time."""
    settings = Settings.from_env()
    model = model or settings.bundled_model
    if not model:
        raise click.UsageError("no model to check: pass --model NAME")
    client = Client(url or settings.base_url, timeout=timeout, api_key=key or settings.engine_key or None)
    try:
        report = check_health(client, model, max_seconds=max_seconds)
    finally:
        client.close()
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else render(report))
    sys.exit(int(report.exit))


def render(report: HealthReport) -> str:
    lines = [f"{step.verdict:<5} {step.name:<11} {step.detail}" for step in report.steps]
    return "\n".join([*lines, report.summary])


COMMANDS = [health]
