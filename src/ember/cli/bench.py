"""`ember bench`: measure a running server; prints a table, `--out` writes JSON and a PNG chart."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ember.config import Settings
from ember.ops.bench import BenchError, BenchResult, Plan, run_bench


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected numbers such as 1,4,8, got {text!r}") from None
    if not levels or any(level < 1 or level > 256 for level in levels):
        raise click.BadParameter(f"expected client counts between 1 and 256, got {text!r}")
    return levels


@click.command()
@click.option("--model", help="Model to measure (default: the bundled model, EMBER_BUNDLED_MODEL).")
@click.option("--url", help="Server to measure, engine or web role (default: EMBER_HOST/OLLAMA_HOST).")
@click.option("--key", help="API key, sent as 'Authorization: Bearer KEY' (default: EMBER_ENGINE_KEY if set).")
@click.option("--requests", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Requests per phase, and per client in the concurrency phases.")
@click.option("--max-tokens", type=click.IntRange(2, 4096), default=64, show_default=True,
              help="Tokens to generate per request (num_predict).")
@click.option("--prompt-tokens", type=click.IntRange(16, 100_000), default=512, show_default=True,
              help="About this many tokens of prompt for the prompt-processing phase.")
@click.option("--concurrency", default="1,4,8", show_default=True, help="Concurrent clients to measure.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds to wait for one request.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write PATH.json (every number and the machine) and PATH.png (a chart; needs matplotlib).")
def bench(model: str | None, url: str | None, key: str | None, requests: int, max_tokens: int, prompt_tokens: int,
          concurrency: str, timeout: float, out: Path | None) -> None:
    """Measure tokens/s, time to first token and throughput at 1, 4 and 8 clients on a running server."""
    settings = Settings.from_env()
    model = model or settings.bundled_model
    if not model:
        raise click.UsageError("no model to measure: pass --model NAME")
    plan = Plan(model=model, requests=requests, max_tokens=max_tokens, prompt_tokens=prompt_tokens,
                concurrency=_levels(concurrency), timeout=timeout)
    result = _measure(url or settings.base_url, plan, key or settings.engine_key or None)
    click.echo(render(result))
    if out is not None:
        write_outputs(result, out)


def _measure(url: str, plan: Plan, key: str | None) -> BenchResult:
    with click.progressbar(length=plan.total_requests, label=f"bench {plan.model}", file=sys.stderr,
                           show_pos=True, item_show_func=lambda phase: phase) as bar:
        try:
            return run_bench(url, plan, api_key=key, progress=lambda phase: bar.update(1, phase))
        except BenchError as exc:
            click.echo(f"\nError: {exc}", err=True)
            sys.exit(1)


def render(result: BenchResult) -> str:
    def number(value: float | None, unit: str, scale: float = 1.0) -> str:
        return "failed" if value is None else f"{value * scale:.1f} {unit}"

    rows = [("single-stream decode", number(result.decode_tokens_per_s, "tokens/s")),
            ("time to first token", number(result.ttft_s, "ms", 1000)),
            (f"prompt processing (~{result.prompt_tokens or '?'} tokens)",
             number(result.prompt_tokens_per_s, "tokens/s"))]
    rows += [(f"aggregate, {level.clients} client{'s' if level.clients > 1 else ''}",
              f"{level.tokens_per_s:.1f} tokens/s" + (f" ({level.failed} failed)" if level.failed else ""))
             for level in result.levels]
    width = max(len(name) for name, _ in rows)
    machine = result.machine
    lines = [f"{'METRIC'.ljust(width)}    VALUE", *(f"{name.ljust(width)}    {value}" for name, value in rows),
             f"{result.model} at {result.url}; {machine['cpus']} CPUs, load average "
             f"{machine['loadavg_1m_at_start']} at start; {result.failed} failed request(s)"]
    return "\n".join(lines)


def write_outputs(result: BenchResult, out: Path) -> None:
    from ember.ops.bench_chart import ChartUnavailable, write_png

    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out.with_suffix(".json"), out.with_suffix(".png")
    json_path.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    click.echo(f"wrote {json_path}")
    try:
        write_png(result, png_path)
    except ChartUnavailable as exc:
        click.echo(str(exc), err=True)
        return
    click.echo(f"wrote {png_path}")


COMMANDS = [bench]
