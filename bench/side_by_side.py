"""Engine features over HTTP, Ember next to llama-server in one run (issue 13's comparison).

Three servers start together and stay up: Ember with its features on (shared prefix, prompt lookup),
Ember with them off, and llama-server built from the llama.cpp revision Ember links against. Each round
measures every server once per scenario, in rotating order, so compared numbers are taken minutes apart.

(a) shared: 8 users send one ~1k-token system prompt plus a short question at once; time until all 8 have
    their first token, and until all 8 are done. The system prompt carries the round's number at its start,
    so no round finds an earlier round's cache.
(b) copy: one stream, "repeat this text" over a passage, up to 160 tokens at temperature 0; decode tokens/s
    as the server reports it (eval_count / eval_duration; llama-server's predicted_n / predicted_ms).

    python bench/side_by_side.py --out bench/results     # builds llama-server first if needed (~8 min)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from client import ChatClient, Result
from engine_features import PASSAGE, QUESTIONS, SYSTEM
from servers import EMBER, LLAMA_SERVER, Server, ServerConfig, build_llama_server, make_server
from workload import TokenCounter, bundled_gguf

EMBER_ON, EMBER_OFF = "ember (features on)", "ember (features off)"
FEATURES = {EMBER_ON: {"EMBER_SHARED_PREFIX": "true", "EMBER_PROMPT_LOOKUP": "5"},
            EMBER_OFF: {"EMBER_SHARED_PREFIX": "false", "EMBER_PROMPT_LOOKUP": "0"}}
COPY_TOKENS = 160


def start(names: list[str], cfg: ServerConfig, log_dir: Path) -> dict[str, Server]:
    live: dict[str, Server] = {}
    for name in names:
        server = make_server(EMBER if name in FEATURES else name, cfg, log_dir)
        server.env.update(FEATURES.get(name, {}))
        server.log_path = log_dir / f"{name.split()[0]}-{len(live)}.log"
        print(f"== starting {name}", flush=True)
        server.start()
        live[name] = server
    return live


async def shared_round(client: ChatClient, round_no: int, max_tokens: int) -> dict[str, Any]:
    system = f"Session {round_no}. {SYSTEM}"
    results = await asyncio.gather(*(client.chat([{"role": "system", "content": system},
                                                   {"role": "user", "content": q}], max_tokens)
                                     for q in QUESTIONS))
    return {"ok": all(r.ok for r in results),
            "errors": [r.error for r in results if not r.ok],
            "all_first_token_s": max(_ttft(r) for r in results),
            "total_s": max(r.t_start + (r.latency_s or 0) for r in results) - min(r.t_start for r in results),
            "prompt_tokens": [r.prompt_tokens for r in results],
            "prompt_cached": [r.prompt_cached for r in results],
            "gen_tokens": [r.gen_tokens for r in results]}


def _ttft(result: Result) -> float:
    return result.ttft_s if result.ttft_s is not None else float("inf")


async def copy_round(client: ChatClient, round_no: int) -> dict[str, Any]:
    prompt = f"Repeat this text exactly:\n\n{PASSAGE} (copy {round_no})"
    r = await client.chat([{"role": "user", "content": prompt}], COPY_TOKENS)
    decode_s = (r.server_decode_ms or 0) / 1000
    return {"ok": r.ok, "error": r.error, "gen_tokens": r.gen_tokens,
            "decode_tok_s": r.gen_tokens / decode_s if decode_s else None, "text": r.text}


async def measure(live: dict[str, Server], rounds: int, max_tokens: int, counter: TokenCounter) -> dict[str, Any]:
    names = list(live)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {n: {"shared": [], "copy": []} for n in names}
    for round_no in range(rounds):
        order = names[round_no % len(names):] + names[:round_no % len(names)]
        for scenario in ("shared", "copy"):
            for name in order:
                server = live[name]
                client = ChatClient(server.base_url, server.api, server.model, counter, stream_usage=True)
                try:
                    if scenario == "shared":
                        run = await shared_round(client, round_no, max_tokens)
                    else:
                        run = await copy_round(client, round_no)
                finally:
                    await client.aclose()
                runs[name][scenario].append(run)
                print(json.dumps({"round": round_no, "scenario": scenario, "server": name,
                                  **{k: v for k, v in run.items() if k != "text"}}), flush=True)
    return runs


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, scenarios in runs.items():
        shared = [r for r in scenarios["shared"] if r["ok"]]
        copies = [r for r in scenarios["copy"] if r["ok"] and r["decode_tok_s"]]
        out[name] = {
            "all_first_token_s": statistics.median(r["all_first_token_s"] for r in shared) if shared else None,
            "total_s": statistics.median(r["total_s"] for r in shared) if shared else None,
            "copy_decode_tok_s": statistics.median(r["decode_tok_s"] for r in copies) if copies else None,
            "copy_gen_tokens": [r["gen_tokens"] for r in scenarios["copy"]],
            "failed_rounds": sum(not r["ok"] for s in scenarios.values() for r in s),
        }
    return out


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    ls = s.get(LLAMA_SERVER, {})
    off = s.get(EMBER_OFF, {})

    def ratio(value: float | None, base: float | None) -> str:
        return f"{value / base:.2f}x" if value and base else "-"

    def num(value: float | None, fmt: str) -> str:
        return format(value, fmt) if value is not None else "-"

    lines = [f"# Ember next to llama-server: shared prefix and copy-heavy decode ({result['when']})", "",
             f"Model {Path(result['model']).name}, {result['threads']} threads, {result['parallel']} slots, "
             f"{result['ctx']} context per slot, temperature 0, {result['rounds']} rounds (medians).",
             f"Load before: `{result['uptime_before']}`; after: `{result['uptime_after']}`.", "",
             f"## (a) 8 users, one system prompt ({result['shared_prompt_tokens']} prompt tokens each), "
             f"{result['max_tokens']} tokens each", "",
             "| server | all 8 first tokens (s) | vs llama-server | total (s) | vs llama-server |",
             "|---|---|---|---|---|"]
    for name, row in s.items():
        lines.append(f"| {name} | {num(row['all_first_token_s'], '.2f')} | "
                     f"{ratio(row['all_first_token_s'], ls.get('all_first_token_s'))} | "
                     f"{num(row['total_s'], '.2f')} | {ratio(row['total_s'], ls.get('total_s'))} |")
    lines += ["", "Prompt tokens taken from cache per user, round 0: " + "; ".join(
        f"{name}: {runs['shared'][0]['prompt_cached']}" for name, runs in result["runs"].items()) + ".", ""]
    lines += ["", f"## (b) one stream, copy-heavy prompt, up to {COPY_TOKENS} tokens", "",
              "| server | decode tok/s | vs Ember off | vs llama-server | tokens per round |", "|---|---|---|---|---|"]
    for name, row in s.items():
        lines.append(f"| {name} | {num(row['copy_decode_tok_s'], '.1f')} | "
                     f"{ratio(row['copy_decode_tok_s'], off.get('copy_decode_tok_s'))} | "
                     f"{ratio(row['copy_decode_tok_s'], ls.get('copy_decode_tok_s'))} | {row['copy_gen_tokens']} |")
    lines += ["", f"Copy answers identical across servers, round 0: {result['copy_texts_identical']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per answer in (a)")
    parser.add_argument("--llama-server", dest="llama_server_bin", default=None,
                        help="prebuilt llama-server (default: build it with bench/build_llama_server.sh)")
    parser.add_argument("--out", type=Path, default=None, help="folder for side-by-side-DATE.{json,md}")
    args = parser.parse_args()
    gguf = bundled_gguf()
    cfg = ServerConfig(gguf=gguf, threads=args.threads, parallel=8, ctx=2048,
                       llama_server_bin=args.llama_server_bin or build_llama_server())
    counter = TokenCounter(gguf)
    log_dir = Path(tempfile.mkdtemp(prefix="ember-side-by-side-"))
    live: dict[str, Server] = {}
    try:
        live = start([EMBER_ON, EMBER_OFF, LLAMA_SERVER], cfg, log_dir)
        before = uptime()
        runs = asyncio.run(measure(live, args.rounds, args.max_tokens, counter))
    finally:
        for server in live.values():
            server.stop()
    first_copies = {n: r["copy"][0]["text"] for n, r in runs.items()}
    result = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "model": gguf, "threads": args.threads,
              "parallel": cfg.parallel, "ctx": cfg.ctx, "rounds": args.rounds, "max_tokens": args.max_tokens,
              "uptime_before": before, "uptime_after": uptime(), "logs": str(log_dir),
              "shared_prompt_tokens": runs[LLAMA_SERVER]["shared"][0]["prompt_tokens"][0],
              "copy_texts_identical": len(set(first_copies.values())) == 1,
              "runs": runs, "summary": summarize(runs)}
    print(json.dumps(result["summary"], indent=2))
    if args.out:
        stem = args.out / f"side-by-side-{datetime.now(UTC).date()}"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        stem.with_suffix(".md").write_text(markdown(result))


if __name__ == "__main__":
    main()
