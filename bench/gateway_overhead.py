"""What the web role adds on top of the engine, measured side by side in one run.

Starts a real engine (``ember serve --role engine``, with EMBER_ENGINE_KEY) and a real web role (``ember serve
--role web`` in front of it, SQLite in a temporary EMBER_HOME, one API key), as two processes. Then:

* **Added latency per request**: the same request sent alternately to the engine directly and through the web
  role (A B A B ..., so a slow spell of a shared machine hits both alike); the result is the median of the
  paired differences (web minus direct), next to each side's median. Two kinds: ``GET /api/show``-like reads
  (``POST /api/show``) and a one-token ``/api/generate``.
* **Web-process CPU per streamed token**: streamed generations through the web role, with the web process's
  CPU time (``/proc/PID/stat`` utime + stime) read before and after; divided by the NDJSON lines relayed.

Goals (issue 10): added latency <= 2 ms median, web CPU <= 0.1 ms per streamed token.

    python bench/gateway_overhead.py                    # ~2-3 min on 2 cores
    python bench/gateway_overhead.py --requests 50 --streams 4 --out /tmp
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ENGINE_KEY = "bench-engine-key-0123456789abcdef"
MODEL = "smollm2:135m"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(role: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "ember.cli.main", "serve", "--role", role], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(url: str, headers: dict[str, str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


def make_key(database_url: str) -> str:
    from ember.db import Database
    from ember.db.keys import create_key
    from ember.db.users import create_user

    database = Database.open(database_url)
    database.migrate()
    create_user(database, "bench", "bench-password", "admin")
    _, secret = create_key(database, name="bench", user_name="bench", scopes=["chat", "embed", "models", "admin"])
    database.close()
    return secret


def idle_cpu_per_s(pid: int, seconds: float = 5.0) -> float:
    """The web process's CPU use while nothing is asked of it (health checks, the audit thread's ticks)."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def paired_latency(direct: httpx.Client, web: httpx.Client, method: str, path: str, body: dict[str, Any] | None,
                   count: int, web_pid: int) -> dict[str, float]:
    """Alternate direct and web requests; medians in milliseconds, and the web process's CPU per request."""
    direct_ms, web_ms, added = [], [], []
    cpu_before = 0.0
    for i in range(count + 5):
        pair = []
        for client in ((direct, web) if i % 2 == 0 else (web, direct)):
            started = time.perf_counter()
            response = client.request(method, path, json=body)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.text
            pair.append((client is web, elapsed))
        if i < 5:
            cpu_before = cpu_seconds(web_pid)
            continue  # warm-up: connections, caches, the loaded model
        d = next(ms for is_web, ms in pair if not is_web)
        w = next(ms for is_web, ms in pair if is_web)
        direct_ms.append(d)
        web_ms.append(w)
        added.append(w - d)
    web_cpu_ms = 1000 * (cpu_seconds(web_pid) - cpu_before) / count
    return {"requests": count, "web_cpu_ms_per_request": web_cpu_ms, "direct_median_ms": statistics.median(direct_ms),
            "web_median_ms": statistics.median(web_ms), "added_median_ms": statistics.median(added),
            "added_p90_ms": sorted(added)[int(0.9 * (len(added) - 1))]}


def stream_cpu(web: httpx.Client, web_pid: int, streams: int, tokens: int) -> dict[str, float]:
    body = {"model": MODEL, "prompt": "Tell a long story about a lighthouse keeper.",
            "options": {"num_predict": tokens, "temperature": 0.7}}

    def one(index: int) -> int:
        lines = 0
        with web.stream("POST", "/api/generate", json={**body, "options": {**body["options"], "seed": index}}) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                lines += bool(line)
        return lines

    before, started = cpu_seconds(web_pid), time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        lines = sum(pool.map(one, range(streams)))
    wall, cpu = time.perf_counter() - started, cpu_seconds(web_pid) - before
    idle = idle_cpu_per_s(web_pid) * wall  # what the web process would have used anyway over that time
    return {"streams": streams, "tokens_relayed": lines, "wall_s": wall, "web_cpu_s": cpu,
            "web_idle_cpu_s_same_time": idle, "web_cpu_ms_per_token": 1000 * cpu / max(lines, 1),
            "web_cpu_ms_per_token_minus_idle": 1000 * max(cpu - idle, 0.0) / max(lines, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="paired requests per latency kind")
    parser.add_argument("--streams", type=int, default=8, help="streamed generations for the CPU measurement")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per streamed generation")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads of the engine")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="results directory")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ember-gw-bench-"))
    engine_port, web_port = free_port(), free_port()
    database_url = f"sqlite:///{tmp / 'home' / 'ember.db'}"
    base = {**os.environ, "EMBER_HOME": str(tmp / "home"), "EMBER_ENGINE_KEY": ENGINE_KEY,
            "EMBER_LOG_LEVEL": "warning", "EMBER_HOST": f"127.0.0.1:{engine_port}"}
    engine_env = {**base, "EMBER_MODELS": str(tmp / "models"), "EMBER_NUM_THREAD": str(args.threads),
                  "EMBER_NUM_PARALLEL": "8", "EMBER_KEEP_ALIVE": "-1"}
    web_env = {**base, "EMBER_WEB_HOST": f"127.0.0.1:{web_port}", "EMBER_DATABASE_URL": database_url,
               "EMBER_ENGINES": f"http://127.0.0.1:{engine_port}"}
    secret = make_key(database_url)
    engine = start("engine", engine_env, tmp / "engine.log")
    web_process = start("web", web_env, tmp / "web.log")
    try:
        wait_ready(f"http://127.0.0.1:{engine_port}/api/version", {"Authorization": f"Bearer {ENGINE_KEY}"})
        wait_ready(f"http://127.0.0.1:{web_port}/readyz", {})
        with httpx.Client(base_url=f"http://127.0.0.1:{engine_port}", timeout=300,
                          headers={"Authorization": f"Bearer {ENGINE_KEY}"}) as direct, \
                httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=300,
                             headers={"Authorization": f"Bearer {secret}"}) as web:
            result = {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()},
                "web_idle_cpu_ms_per_s": 1000 * idle_cpu_per_s(web_process.pid),
                "show": paired_latency(direct, web, "POST", "/api/show", {"model": MODEL}, args.requests,
                                       web_process.pid),
                "generate_1_token": paired_latency(
                    direct, web, "POST", "/api/generate",
                    {"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 1}},
                    args.requests, web_process.pid),
                "streaming": stream_cpu(web, web_process.pid, args.streams, args.tokens),
            }
            result["machine"]["load_avg_at_end"] = os.getloadavg()
    finally:
        for process in (web_process, engine):
            os.killpg(process.pid, signal.SIGTERM)
        for process in (web_process, engine):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gateway-overhead-{datetime.now(UTC):%Y-%m-%d}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    for kind in ("show", "generate_1_token"):
        r = result[kind]
        print(f"{kind:>17}: direct {r['direct_median_ms']:.2f} ms, web {r['web_median_ms']:.2f} ms, "
              f"added median {r['added_median_ms']:.2f} ms (p90 {r['added_p90_ms']:.2f}); "
              f"web CPU {r['web_cpu_ms_per_request']:.2f} ms/request")
    print(f"   web idle: {result['web_idle_cpu_ms_per_s']:.2f} ms CPU per second")
    s = result["streaming"]
    print(f"        streaming: {s['tokens_relayed']} tokens, web CPU {s['web_cpu_ms_per_token']:.4f} ms/token "
          f"({s['web_cpu_ms_per_token_minus_idle']:.4f} without its idle cost)")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
