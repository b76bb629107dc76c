"""Single-stream decode of two Ember source trees in one run: did a change make decoding slower?

Both trees serve the bundled model at once (engine only, the same settings as run.py); the same short story
requests go to each in alternating order (A B, B A, ...), so a slow spell of a shared machine hits both
alike. Decode speed is what each server reports (eval_count / eval_duration).

    git worktree add /tmp/ember-old <commit>
    python bench/decode_ab.py --old /tmp/ember-old --requests 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path

from client import ChatClient
from servers import EMBER, REPO_ROOT, Server, ServerConfig, make_server
from workload import TokenCounter, bundled_gguf


def start(name: str, tree: Path, cfg: ServerConfig, log_dir: Path) -> Server:
    server = make_server(EMBER, cfg, log_dir)
    server.env["PYTHONPATH"] = str(tree / "src")
    server.log_path = log_dir / f"{name}.log"
    if "--role" not in (tree / "src/ember/cli/serve.py").read_text():
        server.cmd = server.cmd[:-2]  # a tree from before `serve --role`: it serves the engine alone
    server.start()
    return server


async def measure(servers: dict[str, Server], requests: int, counter: TokenCounter) -> dict[str, list[float]]:
    speeds: dict[str, list[float]] = {name: [] for name in servers}
    names = list(servers)
    for i in range(requests):
        for name in names if i % 2 == 0 else names[::-1]:
            client = ChatClient(servers[name].base_url, "ollama", "smollm2:135m", counter)
            try:
                r = await client.chat([{"role": "user", "content": f"Story {i}: tell me about a cat named {i}."}],
                                      128)
            finally:
                await client.aclose()
            if r.ok and r.server_decode_ms:
                speeds[name].append(r.gen_tokens / (r.server_decode_ms / 1000))
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, required=True, help="the other Ember tree (a git worktree)")
    parser.add_argument("--requests", type=int, default=16, help="requests per tree")
    args = parser.parse_args()
    gguf = bundled_gguf()
    cfg = ServerConfig(gguf=gguf)
    log_dir = Path(tempfile.mkdtemp(prefix="ember-decode-ab-"))
    servers: dict[str, Server] = {}
    try:
        for name, tree in (("old", args.old), ("new", REPO_ROOT)):
            servers[name] = start(name, tree, cfg, log_dir)
        speeds = asyncio.run(measure(servers, args.requests, TokenCounter(gguf)))
    finally:
        for server in servers.values():
            server.stop()
    print(json.dumps({name: {"median_tok_s": round(statistics.median(v), 1), "min": round(min(v), 1),
                             "max": round(max(v), 1), "n": len(v)} for name, v in speeds.items() if v}))


if __name__ == "__main__":
    main()
