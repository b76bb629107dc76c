"""Soak: mixed load on a real Ember engine for a while, with a runner ``kill -9`` every few minutes (issue 14).

    python bench/soak.py                      # 30 minutes, 4 clients, a kill every 5 minutes
    python bench/soak.py --minutes 2 --kill-every 0.75

Starts ``ember serve`` (engine role) on a free loopback port with the bundled model, then ``--concurrency``
clients send, until the time is up, a random mix of streaming and non-streaming chats, generates, OpenAI
streaming chats, embeddings, and streams that the client drops after a few chunks. Every request has a bound
(``--request-bound``); one that passes it is cancelled and counted as stuck (the goal is 0). The runner of the
model is killed with SIGKILL every ``--kill-every`` minutes; an error of a request that was in flight at a kill
(or started within ``KILL_GRACE_S`` before one) is attributed to it. Everything else that fails is unexpected.

Writes ``<out>/soak-<date>-<minutes>min.json`` and ``.png`` (latency and RSS over time). Exit status 0 when the
run was clean: no stuck request, no unexpected error, the server idle at the end. Only loopback traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import REPO_ROOT, Server, ember_command, free_port

MODEL = "smollm2:135m"
KILL_GRACE_S = 2.0  # a request that starts this shortly before a kill may still be routed to the dying runner
SAMPLE_EVERY_S = 5.0
OPS = ("chat", "chat_stream", "generate", "openai_stream", "embed", "disconnect")
WEIGHTS = (3, 3, 2, 2, 2, 1)
PROMPTS = ("Name a colour.", "Say hello in French.", "What is 2+2?", "Give one word for happy.",
           "Write a haiku about rain.", "List three fruits.", "Why is the sky blue? One sentence.")


@dataclass
class Outcome:
    op: str
    started: float  # seconds since the start of the load
    ended: float
    ok: bool
    kind: str = ""  # error kind: http_<status>, stream_error, stuck, connect, protocol
    detail: str = ""
    kill_caused: bool = False

    @property
    def latency(self) -> float:
        return self.ended - self.started


@dataclass
class Soak:
    url: str
    server_pid: int
    minutes: float
    concurrency: int
    kill_every_s: float
    request_bound_s: float
    max_tokens: int
    t0: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    kills: list[dict[str, Any]] = field(default_factory=list)
    rss: list[dict[str, Any]] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.t0


# ----------------------------------------------------------------------------------------- processes

def children(pid: int) -> list[int]:
    """Direct children of ``pid``, from /proc (no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces; the parent pid is the 2nd field after it
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def runner_pids(server_pid: int) -> list[int]:
    pids = []
    for pid in children(server_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ember.engine.runner_main" in cmdline:
            pids.append(pid)
    return pids


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ------------------------------------------------------------------------------------------ requests

def ollama_options(max_tokens: int) -> dict[str, Any]:
    return {"num_predict": max_tokens, "temperature": 0.7}


async def run_op(client: httpx.AsyncClient, op: str, rng: random.Random, max_tokens: int) -> None:
    """Send one request of kind ``op``; raise on any failure (the caller classifies it)."""
    prompt = rng.choice(PROMPTS) + f" (#{rng.randrange(10**6)})"  # a fresh prompt: no whole-prompt cache hits
    messages = [{"role": "user", "content": prompt}]
    if op == "chat":
        await expect_json(client.post("/api/chat", json={"model": MODEL, "messages": messages, "stream": False,
                                                         "options": ollama_options(max_tokens)}))
    elif op == "generate":
        await expect_json(client.post("/api/generate", json={"model": MODEL, "prompt": prompt, "stream": False,
                                                             "options": ollama_options(max_tokens)}))
    elif op == "embed":
        await expect_json(client.post("/api/embed", json={"model": MODEL, "input": [prompt, prompt[::-1]]}))
    elif op == "chat_stream":
        await read_stream(client, "/api/chat", {"model": MODEL, "messages": messages,
                                                "options": ollama_options(max_tokens)}, stop_after=None)
    elif op == "openai_stream":
        await read_stream(client, "/v1/chat/completions", {"model": MODEL, "messages": messages, "stream": True,
                                                           "max_tokens": max_tokens}, stop_after=None)
    else:  # disconnect: read a couple of chunks, then drop the connection mid-stream
        await read_stream(client, "/api/chat", {"model": MODEL, "messages": messages,
                                                "options": ollama_options(max_tokens)}, stop_after=rng.randint(1, 3))


class RequestFailed(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


async def expect_json(pending: Any) -> None:
    response: httpx.Response = await pending
    if response.status_code != 200:
        raise RequestFailed(f"http_{response.status_code}", response.text[:200])
    response.json()


async def read_stream(client: httpx.AsyncClient, path: str, body: dict[str, Any], stop_after: int | None) -> None:
    async with client.stream("POST", path, json=body) as response:
        if response.status_code != 200:
            await response.aread()
            raise RequestFailed(f"http_{response.status_code}", response.text[:200])
        chunks = 0
        async for line in response.aiter_lines():
            if not line.strip():
                continue
            if '"error"' in line:  # an error after the first byte: the last NDJSON line / SSE event
                raise RequestFailed("stream_error", line[:200])
            chunks += 1
            if stop_after is not None and chunks >= stop_after:
                return  # leaving the block closes the connection: the server must notice and free the slot


async def timed(soak: Soak, client: httpx.AsyncClient, op: str, rng: random.Random) -> Outcome:
    started = soak.now()
    try:
        async with asyncio.timeout(soak.request_bound_s):
            await run_op(client, op, rng, soak.max_tokens)
        return Outcome(op, started, soak.now(), True)
    except TimeoutError:
        return Outcome(op, started, soak.now(), False, "stuck", f"no answer within {soak.request_bound_s:g} s")
    except RequestFailed as exc:
        return Outcome(op, started, soak.now(), False, exc.kind, exc.detail)
    except httpx.TransportError as exc:
        return Outcome(op, started, soak.now(), False, "connect", f"{type(exc).__name__}: {exc}"[:200])
    except (httpx.HTTPError, ValueError) as exc:
        return Outcome(op, started, soak.now(), False, "protocol", f"{type(exc).__name__}: {exc}"[:200])


async def client_loop(soak: Soak, end: float, seed: int) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=soak.url, timeout=soak.request_bound_s + 5) as client:
        while soak.now() < end:
            op = rng.choices(OPS, WEIGHTS)[0]
            soak.outcomes.append(await timed(soak, client, op, rng))
            await asyncio.sleep(rng.uniform(0, 0.2))


async def killer(soak: Soak, end: float) -> None:
    next_kill = soak.kill_every_s
    while soak.kill_every_s > 0 and next_kill < end:
        await asyncio.sleep(max(0.0, next_kill - soak.now()))
        pids = runner_pids(soak.server_pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        soak.kills.append({"t": round(soak.now(), 2), "pids": pids})
        print(f"[{soak.now():7.1f}s] kill -9 runner(s) {pids}", flush=True)
        next_kill += soak.kill_every_s


async def sampler(soak: Soak, end: float) -> None:
    while True:
        runners = runner_pids(soak.server_pid)
        soak.rss.append({"t": round(soak.now(), 2), "api_mib": rss_mib(soak.server_pid),
                         "runners_mib": sum(r for pid in runners if (r := rss_mib(pid)) is not None),
                         "runners": runners})
        if soak.now() >= end:
            return
        await asyncio.sleep(min(SAMPLE_EVERY_S, max(0.1, end - soak.now())))


def attribute_kills(soak: Soak) -> None:
    for outcome in soak.outcomes:
        if outcome.ok or outcome.kind == "stuck":
            continue  # a stuck request is never excused
        outcome.kill_caused = any(outcome.started - KILL_GRACE_S <= k["t"] <= outcome.ended for k in soak.kills)


async def wait_idle(url: str, bound_s: float = 15.0) -> bool:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            rows = (await client.get("/api/ps")).json()["models"]
            if all(r["active"] == 0 and r["queued"] == 0 for r in rows):
                return True
            await asyncio.sleep(0.2)
    return False


async def drive(soak: Soak) -> bool:
    async with httpx.AsyncClient(base_url=soak.url, timeout=300) as client:  # load the model first
        await expect_json(client.post("/api/generate", json={"model": MODEL, "prompt": "Hi", "stream": False,
                                                             "options": {"num_predict": 1}}))
    soak.t0 = time.monotonic()
    end = soak.minutes * 60
    tasks = [client_loop(soak, end, seed) for seed in range(soak.concurrency)]
    await asyncio.gather(sampler(soak, end), killer(soak, end), *tasks)
    attribute_kills(soak)
    return await wait_idle(soak.url)


# ------------------------------------------------------------------------------------------- report

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def per_minute(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    rows = []
    last = int(max((o.started for o in outcomes), default=0) // 60)
    for minute in range(last + 1):
        latencies = [o.latency for o in outcomes if o.ok and o.op != "disconnect" and int(o.started // 60) == minute]
        rows.append({"minute": minute, "requests": sum(1 for o in outcomes if int(o.started // 60) == minute),
                     "p50_s": round(percentile(latencies, 0.5), 3), "p95_s": round(percentile(latencies, 0.95), 3)})
    return rows


def growth(first: float | None, last: float | None) -> float | None:
    if not first or last is None:
        return None
    return round(100 * (last - first) / first, 1)


def report(soak: Soak, idle: bool, args: argparse.Namespace) -> dict[str, Any]:
    errors = [o for o in soak.outcomes if not o.ok]
    unexpected = [o for o in errors if not o.kill_caused]
    by_kind: dict[str, dict[str, int]] = {}
    for o in errors:
        row = by_kind.setdefault(o.kind, {"kill_caused": 0, "unexpected": 0})
        row["kill_caused" if o.kill_caused else "unexpected"] += 1
    first, last = soak.rss[0], soak.rss[-1]
    stuck = sum(1 for o in errors if o.kind == "stuck")
    unexpected_5xx = sum(1 for o in unexpected if o.kind.startswith("http_5"))
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": {"minutes": soak.minutes, "concurrency": soak.concurrency, "kill_every_s": soak.kill_every_s,
                   "request_bound_s": soak.request_bound_s, "max_tokens": soak.max_tokens, "model": MODEL,
                   "threads": args.threads, "parallel": args.parallel, "ops": dict(zip(OPS, WEIGHTS, strict=True))},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "requests_sent": len(soak.outcomes),
        "requests_by_op": {op: sum(1 for o in soak.outcomes if o.op == op) for op in OPS},
        "ok": len(soak.outcomes) - len(errors),
        "errors_by_kind": by_kind,
        "kills": soak.kills,
        "stuck_requests": stuck,
        "unexpected_errors": len(unexpected),
        "unexpected_5xx": unexpected_5xx,
        "idle_at_end": idle,
        "latency_per_minute": per_minute(soak.outcomes),
        "latency_overall": {"p50_s": round(percentile([o.latency for o in soak.outcomes if o.ok], 0.5), 3),
                            "p95_s": round(percentile([o.latency for o in soak.outcomes if o.ok], 0.95), 3)},
        "rss_mib": {"api_start": first["api_mib"], "api_end": last["api_mib"],
                    "api_growth_pct": growth(first["api_mib"], last["api_mib"]),
                    "runners_start": first["runners_mib"], "runners_end": last["runners_mib"],
                    "runners_growth_pct": growth(first["runners_mib"], last["runners_mib"])},
        "rss_samples": soak.rss,
        "error_samples": [asdict(o) for o in errors[:50]],
        "clean": stuck == 0 and not unexpected and idle,
        "requests": [[o.op, round(o.started, 3), round(o.latency, 3), o.ok, o.kind, o.kill_caused]
                     for o in soak.outcomes],
    }


def chart(result: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        print("no chart: matplotlib is not installed (pip install '.[bench]')", flush=True)
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    oks = [r for r in result["requests"] if r[3] and r[0] != "disconnect"]
    # each request is drawn when it ended, so a failure lines up with the kill that caused it
    top.scatter([(r[1] + r[2]) / 60 for r in oks], [r[2] for r in oks], s=4, alpha=0.3, label="request latency")
    minutes = result["latency_per_minute"]
    top.plot([m["minute"] + 0.5 for m in minutes], [m["p50_s"] for m in minutes], "o-", label="p50 per minute")
    top.plot([m["minute"] + 0.5 for m in minutes], [m["p95_s"] for m in minutes], "s-", label="p95 per minute")
    failed = [r for r in result["requests"] if not r[3]]
    top.scatter([(r[1] + r[2]) / 60 for r in failed], [r[2] for r in failed], s=18, marker="x", color="red",
                label="failed request")
    top.set_ylabel("latency (s), at completion")
    top.legend(loc="upper right", fontsize=8)
    samples = result["rss_samples"]
    bottom.plot([s["t"] / 60 for s in samples], [s["api_mib"] for s in samples], label="API process RSS")
    bottom.plot([s["t"] / 60 for s in samples], [s["runners_mib"] for s in samples], label="runner RSS")
    bottom.set_ylabel("RSS (MiB)")
    bottom.set_xlabel("minutes")
    bottom.legend(loc="upper right", fontsize=8)
    for axis in (top, bottom):
        for kill in result["kills"]:
            axis.axvline(kill["t"] / 60, color="grey", linestyle="--", linewidth=0.8)
    cfg = result["config"]
    fig.suptitle(f"Ember soak: {cfg['minutes']:g} min, {cfg['concurrency']} clients, runner kill -9 every "
                 f"{cfg['kill_every_s'] / 60:g} min (dashed lines); {result['requests_sent']} requests, "
                 f"{result['stuck_requests']} stuck", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------------------------- main

def start_ember(args: argparse.Namespace, log_dir: Path) -> Server:
    port = free_port()
    models = tempfile.mkdtemp(prefix="ember-soak-models-")
    env = dict(os.environ)
    src = str(REPO_ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update({"EMBER_HOST": f"127.0.0.1:{port}", "EMBER_MODELS": models, "EMBER_NUM_THREAD": str(args.threads),
                "EMBER_NUM_PARALLEL": str(args.parallel), "EMBER_CONTEXT_LENGTH": "2048", "EMBER_KEEP_ALIVE": "-1",
                "EMBER_MAX_PREDICT": str(max(args.max_tokens, 1))})
    server = Server("ember", "ollama", ember_command(), env, port, "/api/version",
                    log_dir / "ember.log", model=MODEL, tmpdirs=[models])
    server.start()
    return server


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to drive load (default 30)")
    parser.add_argument("--concurrency", type=int, default=4, help="clients sending at once (default 4)")
    parser.add_argument("--kill-every", type=float, default=5.0,
                        help="minutes between runner kill -9s (default 5; 0 = never)")
    parser.add_argument("--request-bound", type=float, default=60.0,
                        help="seconds after which a request counts as stuck (default 60)")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens generated per request (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="EMBER_NUM_THREAD (default 2)")
    parser.add_argument("--parallel", type=int, default=4, help="EMBER_NUM_PARALLEL (default 4)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results", help="output folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="ember-soak-logs-"))
    print(f"server log: {log_dir / 'ember.log'}", flush=True)
    server = start_ember(args, log_dir)
    try:
        assert server.proc is not None
        soak = Soak(server.base_url, server.proc.pid, args.minutes, args.concurrency, args.kill_every * 60,
                    args.request_bound, args.max_tokens)
        idle = asyncio.run(drive(soak))
    finally:
        server.stop()
    result = report(soak, idle, args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"soak-{dt.date.today().isoformat()}-{args.minutes:g}min"
    Path(f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    charted = chart(result, Path(f"{stem}.png"))
    rss = result["rss_mib"]
    print(f"soak {args.minutes:g} min: {result['requests_sent']} requests, {result['ok']} ok, errors by kind "
          f"{result['errors_by_kind']}, {len(result['kills'])} kills, {result['stuck_requests']} stuck, "
          f"{result['unexpected_5xx']} unexpected 5xx, p50/p95 {result['latency_overall']['p50_s']}/"
          f"{result['latency_overall']['p95_s']} s, RSS API {rss['api_start']:.0f}->{rss['api_end']:.0f} MiB "
          f"({rss['api_growth_pct']}%), runners {rss['runners_start']:.0f}->{rss['runners_end']:.0f} MiB "
          f"({rss['runners_growth_pct']}%), idle at end: {idle}; clean: {result['clean']}")
    print(f"wrote {stem}.json" + (" and .png" if charted else ""))
    if not result["clean"]:
        for sample in result["error_samples"]:
            if not sample["kill_caused"]:
                print("unexpected:", sample)
    return 0 if result["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
