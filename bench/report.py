"""Markdown table, PNG chart and printed ratios from a benchmark result dict (see run.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from servers import EMBER, LLAMA_CPP_PY, LLAMA_SERVER

# (key, label, unit, higher_is_better)
Row = tuple[str, str, str, bool]


def metric_rows(levels: list[int]) -> list[Row]:
    rows: list[Row] = [
        ("decode_tok_s", "single-stream decode", "tok/s", True),
        ("prefill_tok_s", "prefill, ~1k-token prompt", "tok/s", True),
        ("ttft_ms", "time to first token (short prompt)", "ms", False),
    ]
    for c in levels:
        rows.append((f"c{c}.aggregate_tok_s", f"aggregate, {c} client{'s' if c > 1 else ''}", "tok/s", True))
    for c in levels:
        plural = "s" if c > 1 else ""
        rows.append((f"c{c}.p50_latency_s", f"p50 request latency, {c} client{plural}", "s", False))
        rows.append((f"c{c}.p95_latency_s", f"p95 request latency, {c} client{plural}", "s", False))
    rows += [
        ("second_turn.turn1_ttft_ms", "conversation turn 1 TTFT (~2k prompt)", "ms", False),
        ("second_turn.turn2_ttft_ms", "conversation turn 2 TTFT", "ms", False),
        ("second_turn.ratio", "turn 2 TTFT / turn 1 TTFT", "x", False),
    ]
    return rows


def get(metrics: dict[str, Any] | None, key: str) -> float | None:
    cur: Any = metrics
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return float(cur) if isinstance(cur, (int, float)) else None


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def compute_ratios(result: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    servers = result["servers"]
    em = (servers.get(EMBER) or {}).get("metrics")
    out: dict[str, dict[str, float | None]] = {}
    for other in (LLAMA_SERVER, LLAMA_CPP_PY):
        om = (servers.get(other) or {}).get("metrics")
        if not em or not om:
            continue
        out[f"ember/{other}"] = {key: ratio(get(em, key), get(om, key))
                                 for key, *_ in metric_rows(result["config"]["concurrency"])}
    return out


def compute_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    servers = result["servers"]
    top = max(result["config"]["concurrency"])
    em = (servers.get(EMBER) or {}).get("metrics")
    ls = (servers.get(LLAMA_SERVER) or {}).get("metrics")
    lp = (servers.get(LLAMA_CPP_PY) or {}).get("metrics")
    agg = f"c{top}.aggregate_tok_s"
    checks = [
        ("single-stream decode >= 0.95x llama-server", ratio(get(em, "decode_tok_s"), get(ls, "decode_tok_s")),
         0.95, True),
        (f"aggregate @{top} clients >= 1.0x llama-server -np {result['config']['parallel']}",
         ratio(get(em, agg), get(ls, agg)), 1.0, True),
        (f"aggregate @{top} clients >= 1.8x llama-cpp-python server", ratio(get(em, agg), get(lp, agg)), 1.8, True),
        ("second-turn TTFT <= 0.25x first turn", get(em, "second_turn.ratio"), 0.25, False),
    ]
    out = []
    for name, value, bound, at_least in checks:
        met = None if value is None else (value >= bound if at_least else value <= bound)
        out.append({"target": name, "value": value, "bound": bound, "met": met})
    return out


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    if unit == "ms" or abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    meta = result["meta"]
    names = [n for n in cfg["servers"] if n in result["servers"]]
    ratios = result.get("ratios", {})
    lines = [
        f"# Ember benchmark, {meta['date']}{' (quick smoke run)' if cfg['quick'] else ''}",
        "",
        f"Model `{Path(cfg['model']).name}`, {cfg['threads']} threads, {cfg['parallel']} parallel slots, "
        f"context {cfg['ctx']} per sequence, {cfg['max_tokens']} max tokens, temperature 0. "
        f"Machine: {meta['cpu']} ({meta['cpus']} CPUs), load average before {meta['loadavg_start']}. "
        f"Each value is the median over {cfg.get('rounds', 1)} round(s); every scenario ran "
        "on all servers one at a time, in rotating order, before the next round.",
        "",
    ]
    header = ["metric", "unit", *names]
    ratio_cols = [k for k in (f"ember/{LLAMA_SERVER}", f"ember/{LLAMA_CPP_PY}") if k in ratios]
    header += [k.replace("ember/", "Ember / ") for k in ratio_cols]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for key, label, unit, higher in metric_rows(cfg["concurrency"]):
        cells = [label + ("" if higher else " (lower is better)"), unit]
        for n in names:
            srv = result["servers"][n]
            cells.append("failed" if srv.get("error") and not srv.get("metrics") else
                         _fmt(get(srv.get("metrics"), key), unit))
        for k in ratio_cols:
            r = ratios[k].get(key)
            cells.append("–" if r is None else f"{r:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Generated tokens per request (mean, single stream / all concurrency runs): " + ", ".join(
        f"{n} {_fmt(get(result['servers'][n].get('metrics'), 'decode_mean_gen_tokens'))} / "
        f"{_fmt(get(result['servers'][n].get('metrics'), 'concurrency_mean_gen_tokens'))}" for n in names) + ".")
    errs = {n: result["servers"][n].get("failed_requests", 0) for n in names}
    if any(errs.values()):
        lines.append(f"Failed requests: {errs}.")
    for n in names:
        if result["servers"][n].get("error"):
            err = [ln for ln in result["servers"][n]["error"].splitlines() if ln.strip()]
            lines.append(f"**{n}** failed: {err[0]}" + (f" … `{err[-1].strip()}`" if len(err) > 1 else ""))
    if result.get("targets"):
        lines += ["", "| target (issue 4) | value | met |", "|---|---|---|"]
        for t in result["targets"]:
            v = "–" if t["value"] is None else f"{t['value']:.2f}x"
            met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
            lines.append(f"| {t['target']} | {v} | {met} |")
    lines += ["", "Latency = send to end of stream; TTFT = send to first generated text; decode tok/s = "
              "(generated − 1) / (end − first token); aggregate = all generated tokens / wall time. "
              "See bench/README.md.", ""]
    return "\n".join(lines)


def chart(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = result["config"]
    names = [n for n in cfg["servers"] if result["servers"].get(n, {}).get("metrics")]
    if not names:
        return
    levels = cfg["concurrency"]
    colors = {EMBER: "#d95f02", LLAMA_SERVER: "#1b9e77", LLAMA_CPP_PY: "#7570b3"}
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    title = f"Ember benchmark {result['meta']['date']} — {Path(cfg['model']).name}, {cfg['threads']} threads"
    if cfg["quick"]:
        title += " (quick smoke run)"
    fig.suptitle(title)

    def bars(ax: Any, groups: list[str], key_for: Any, ylabel: str, subtitle: str) -> None:
        width = 0.8 / max(1, len(names))
        for i, n in enumerate(names):
            m = result["servers"][n]["metrics"]
            vals = [get(m, key_for(g)) or 0.0 for g in groups]
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(groups))]
            b = ax.bar(xs, vals, width, label=n, color=colors.get(n))
            ax.bar_label(b, labels=[_fmt(v) if v else "" for v in vals], fontsize=7)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylabel(ylabel)
        ax.set_title(subtitle, fontsize=10)

    bars(axes[0][0], ["decode"], lambda g: "decode_tok_s", "tok/s", "single-stream decode (higher is better)")
    bars(axes[0][1], ["prefill ~1k"], lambda g: "prefill_tok_s", "tok/s", "prefill (higher is better)")
    bars(axes[0][2], ["short prompt", "conv. turn 1", "conv. turn 2"],
         lambda g: {"short prompt": "ttft_ms", "conv. turn 1": "second_turn.turn1_ttft_ms",
                    "conv. turn 2": "second_turn.turn2_ttft_ms"}[g],
         "ms", "time to first token (lower is better)")
    groups = [f"{c} client{'s' if c > 1 else ''}" for c in levels]
    bars(axes[1][0], groups,
         lambda g: f"c{g.split()[0]}.aggregate_tok_s", "tok/s", "aggregate throughput (higher is better)")
    bars(axes[1][1], groups,
         lambda g: f"c{g.split()[0]}.p50_latency_s", "s", "p50 request latency (lower is better)")
    bars(axes[1][2], groups,
         lambda g: f"c{g.split()[0]}.p95_latency_s", "s", "p95 request latency (lower is better)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_ratios(result: dict[str, Any]) -> None:
    ratios = result.get("ratios", {})
    if not ratios:
        print("(no ratios: Ember and at least one other server must have completed)")
    rows = metric_rows(result["config"]["concurrency"])
    for pair, vals in ratios.items():
        print(f"\nRatios {pair.replace('ember/', 'Ember / ')}:")
        for key, label, _unit, higher in rows:
            r = vals.get(key)
            if r is not None:
                print(f"  {label:<42} {r:6.2f}x  ({'higher' if higher else 'lower'} is better)")
    if result.get("targets"):
        print("\nTargets:")
        for t in result["targets"]:
            v = "   n/a" if t["value"] is None else f"{t['value']:6.2f}x"
            met = "n/a" if t["met"] is None else ("met" if t["met"] else "NOT met")
            print(f"  {t['target']:<52} {v}  {met}")
