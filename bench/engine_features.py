"""Engine features on the bundled model, measured in-process (the runner's Batcher on a real llama.cpp context).

(a) shared prefix: 8 users send a ~1k-token system prompt plus a short question at once; time until all 8 have
    their first token, and until all 8 are done, with EMBER_SHARED_PREFIX on and off (runs alternate, so a slow
    spell of a shared machine hits both alike).
(b) prompt lookup: one stream, a copy-heavy prompt (repeat a passage), decode tokens/s with EMBER_PROMPT_LOOKUP
    5 vs 0, and the share of drafted tokens accepted.

The same scenarios over HTTP next to llama-server: bench/side_by_side.py.
Machine load (``uptime``) is recorded with the results, since other work shares the CPUs.

    python bench/engine_features.py --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ember.engine.batcher import Batcher
from ember.engine.llama import Context, ContextSpec, Model
from ember.engine.messages import Done, Generate, RequestEvent, Token
from ember.engine.runner_main import LlamaBackend
from ember.store.bundled import bundled_gguf_path

USERS = 8
WORDS = ["weather", "ocean", "library", "garden", "river", "mountain", "market", "school", "station", "bridge"]
SYSTEM = " ".join(f"Rule {i}: be polite, brief and truthful, and mention the {w} when it helps the user."
                  for i, w in enumerate(WORDS * 5))
QUESTIONS = ["What is 2+2?", "Name a color.", "Say hello.", "What is the sun?", "Name a fruit.",
             "Count to three.", "What is rain?", "Name an animal."]


def chat(question: str) -> str:
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
            "<|im_start|>assistant\n")


def shared_prefix_run(model: Model, share: bool, threads: int, num_predict: int) -> dict[str, Any]:
    spec = ContextSpec(n_ctx_per_seq=2048, n_seq=USERS, n_batch=512, n_thread=threads)
    ctx = Context(model, spec)
    first: dict[int, float] = {}
    done: dict[int, Done] = {}

    def emit(event: RequestEvent) -> None:
        if isinstance(event, Token):
            first.setdefault(event.rid, time.perf_counter())
        elif isinstance(event, Done):
            first.setdefault(event.rid, time.perf_counter())
            done[event.rid] = event

    batcher = Batcher(LlamaBackend(model, ctx, spec), USERS, emit, share_prefix=share)
    prompts = [Generate(i, model.tokenize(chat(q)), {"temperature": 0}, num_predict=num_predict)
               for i, q in enumerate(QUESTIONS)]
    try:
        t0 = time.perf_counter()
        for p in prompts:
            batcher.submit(p)
        while batcher.busy:
            batcher.step()
        total = time.perf_counter() - t0
    finally:
        ctx.close()
    return {
        "shared_prefix": share,
        "prompt_tokens": len(prompts[0].tokens),
        "all_first_token_s": max(first.values()) - t0,
        "total_s": total,
        "prompt_cache_counts": [done[i].prompt_cached for i in range(USERS)],
        "eval_counts": [done[i].eval_count for i in range(USERS)],
    }


PASSAGE = " ".join(f"Item {i}: the {w} report is due on day {i + 3} and goes to the {w} office."
                   for i, w in enumerate(WORDS))


def lookup_run(model: Model, lookup: int, threads: int, num_predict: int) -> dict[str, Any]:
    spec = ContextSpec(n_ctx_per_seq=2048, n_seq=1, n_batch=512, n_thread=threads)
    ctx = Context(model, spec)
    done: list[Done] = []
    batcher = Batcher(LlamaBackend(model, ctx, spec), 1, lambda e: done.extend([e] if isinstance(e, Done) else []),
                      lookup=lookup)
    text = f"<|im_start|>user\nRepeat this text exactly:\n\n{PASSAGE}<|im_end|>\n<|im_start|>assistant\n"
    try:
        batcher.submit(Generate(1, model.tokenize(text), {"temperature": 0}, num_predict=num_predict))
        while batcher.busy:
            batcher.step()
    finally:
        ctx.close()
    d = done[0]
    return {"prompt_lookup": lookup, "eval_count": d.eval_count, "decode_tok_s": d.eval_count / d.eval_duration,
            "drafted": batcher.drafted, "accepted": batcher.accepted, "tokens": d.tokens}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--num-predict", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--skip-shared", action="store_true")
    args = parser.parse_args()
    model = Model(str(bundled_gguf_path()))
    load_before = uptime()
    runs = []
    lookups: list[dict[str, Any]] = []
    for _ in range(args.repeats):
        for share in (() if args.skip_shared else (True, False)):
            runs.append(shared_prefix_run(model, share, args.threads, args.num_predict))
            print(json.dumps(runs[-1]), flush=True)
        for lookup in (5, 0):
            lookups.append(lookup_run(model, lookup, args.threads, 160))
            print(json.dumps({k: v for k, v in lookups[-1].items() if k != "tokens"}), flush=True)
    # Not asserted: llama.cpp's CPU kernels round a multi-token batch differently, so a greedy near-tie can flip.
    identical = len({tuple(r["tokens"]) for r in lookups}) == 1
    result = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "uptime_before": load_before,
              "uptime_after": uptime(), "threads": args.threads, "model": str(bundled_gguf_path()),
              "shared_prefix_runs": runs, "lookup_runs": lookups,
              "lookup_output_identical": identical, "summary": summarize(runs, lookups)}
    model.close()
    print(json.dumps(result["summary"], indent=2))
    if args.out:
        stem = args.out / f"engine-features-{datetime.now(UTC).date()}"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        stem.with_suffix(".md").write_text(markdown(result))


def summarize(runs: list[dict[str, Any]], lookups: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lookup in (5, 0):
        mine = [r for r in lookups if r["prompt_lookup"] == lookup]
        out[f"lookup_{lookup}"] = {"decode_tok_s_median": statistics.median(r["decode_tok_s"] for r in mine),
                                   "accepted": sum(r["accepted"] for r in mine),
                                   "drafted": sum(r["drafted"] for r in mine)}
    for share in (True, False):
        mine = [r for r in runs if r["shared_prefix"] is share]
        if not mine:
            continue
        key = "on" if share else "off"
        out[key] = {"all_first_token_s_median": statistics.median(r["all_first_token_s"] for r in mine),
                    "total_s_median": statistics.median(r["total_s"] for r in mine)}
    return out


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = [
        f"# Engine features ({result['when']})", "",
        f"Model {result['model']}, {result['threads']} threads, in-process batcher.",
        f"Machine load before: `{result['uptime_before']}`; after: `{result['uptime_after']}` "
        "(a shared 2-core machine: absolute times are inflated, compare on vs off).", "",
    ]
    if "on" in s:
        on_run = next(r for r in result["shared_prefix_runs"] if r["shared_prefix"])
        lines += [
            f"## (a) 8 users sharing a system prompt ({on_run['prompt_tokens']} prompt tokens each)", "",
            "| shared prefix | all 8 first tokens (s, median) | total (s, median) |", "|---|---|---|",
            f"| on | {s['on']['all_first_token_s_median']:.2f} | {s['on']['total_s_median']:.2f} |",
            f"| off | {s['off']['all_first_token_s_median']:.2f} | {s['off']['total_s_median']:.2f} |", "",
            f"prompt_cache_count per user, on: {on_run['prompt_cache_counts']}", "",
        ]
    on, off = s["lookup_5"], s["lookup_0"]
    lines += [
        "## (b) one stream, copy-heavy prompt, up to 160 tokens at temperature 0", "",
        f"Output identical on and off: {result['lookup_output_identical']} (eval counts: "
        f"{[r['eval_count'] for r in result['lookup_runs']]}).", "",
        "| prompt lookup | decode tok/s (median) | drafted tokens accepted |", "|---|---|---|",
        f"| 5 | {on['decode_tok_s_median']:.1f} | {on['accepted']}/{on['drafted']} |",
        f"| 0 | {off['decode_tok_s_median']:.1f} | - |", "",
        "llama-server next to it over HTTP: bench/side_by_side.py.", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
