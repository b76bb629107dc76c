"""The PNG chart of an `ember bench` run; matplotlib comes with the ``bench`` extra and is optional."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ember.ops.bench import BenchResult


def _label(rate: float) -> str:
    return f"{rate:.1f}" if rate < 10 else f"{rate:.0f}"


class ChartUnavailable(Exception):
    """matplotlib is not installed; ``str()`` says how to get it."""


def write_png(result: BenchResult, path: Path) -> None:
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    _concurrency_panel(left, result)
    _single_stream_panel(right, result)
    machine = result.machine
    figure.suptitle(f"ember bench: {result.model}", fontsize=13)
    figure.text(0.5, 0.01, f"{machine.get('processor', '')}, {machine.get('cpus')} CPUs, load average "
                f"{machine.get('loadavg_1m_at_start')} at start, {machine.get('time', '')}",
                ha="center", fontsize=8, color="#555555")
    figure.tight_layout(rect=(0, 0.04, 1, 0.95))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise ChartUnavailable("matplotlib is not installed, so no PNG was written: "
                               "pip install 'ember[bench]' (or pip install matplotlib)") from None
    return plt


def _concurrency_panel(axes: Any, result: BenchResult) -> None:
    labels = [str(level.clients) for level in result.levels]
    rates = [level.tokens_per_s for level in result.levels]
    bars = axes.bar(labels, rates, color="#d9622b")
    axes.bar_label(bars, labels=[_label(rate) for rate in rates], padding=2)
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel("aggregate generated tokens/s")
    axes.set_title("throughput")
    axes.margins(y=0.15)


def _single_stream_panel(axes: Any, result: BenchResult) -> None:
    names = ["decode", "prompt"]
    rates = [result.decode_tokens_per_s or 0.0, result.prompt_tokens_per_s or 0.0]
    bars = axes.barh(names, rates, color=["#d9622b", "#8c8c8c"])
    axes.bar_label(bars, labels=[_label(rate) for rate in rates], padding=2)
    axes.set_xlabel("tokens/s, one request at a time")
    ttft = f"{result.ttft_s * 1000:.0f} ms" if result.ttft_s is not None else "n/a"
    axes.set_title(f"single stream (time to first token {ttft})")
    axes.margins(x=0.2)
