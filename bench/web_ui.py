"""The web role with its UI, measured as an operator sees it (issue 11), next to Open WebUI's figures.

Starts a real engine (``ember serve --role engine``) and a real web role (``ember serve --role web``, SQLite in
a temporary EMBER_HOME) as two processes, so the web process's memory is its own. Then measures:

* **Start to first 200**: from spawning the web role to the first 200 on ``/login`` and on ``/`` (logged in).
* **Resident memory** of the web-role process (VmRSS from /proc): idle after start, and after one document
  is uploaded and indexed (embedded through the engine) and 20 chats each get a streamed answer; plus the
  peak (VmHWM).
* **Chat page transfer size**: the page and every script and stylesheet it references, gzip-compressed as
  the server sends them to a browser that accepts gzip.

Open WebUI on this machine (issue 11): 810-830 MB resident at idle, 17-29 s to its first answer.
Goals: web-role RSS <= 150 MB after 20 chats with a document indexed; first 200 on / within 2 s; chat page
assets < 300 KB gzipped.

    python bench/web_ui.py                     # ~2 min on 2 cores
    python bench/web_ui.py --chats 20 --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

MODEL = "smollm2:135m"
DOCUMENT = "\n\n".join(
    f"Section {i}. The lighthouse at Point Ember was repainted in year {1900 + i}; its keeper logged "
    f"{i * 7} storms that season and kept the lamp lit with {i + 3} barrels of oil." for i in range(60))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found for {pid}")


def start(role: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "ember.cli.main", "serve", "--role", role], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def first_200(url: str, started: float, cookies: dict[str, str] | None = None, timeout: float = 60) -> float:
    """Seconds from ``started`` (a perf_counter value) until ``url`` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, cookies=cookies, timeout=2, follow_redirects=False).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


def make_session(database_url: str) -> tuple[str, str]:
    """An admin user and a logged-in session made in the web role's database: (cookie token, CSRF token)."""
    from ember.db import Database
    from ember.db.sessions import create_session
    from ember.db.users import create_user

    database = Database.open(database_url)
    database.migrate()
    user = create_user(database, "bench", "bench-password", "admin")
    made = create_session(database, user.id, timedelta(hours=2))
    database.close()
    return made.token, made.user.csrf_token


def page_transfer(client: httpx.Client) -> dict[str, Any]:
    """The chat page and its scripts and stylesheets, as gzip-compressed bytes on the wire."""
    sizes: dict[str, int] = {}
    with client.stream("GET", "/", headers={"accept-encoding": "gzip"}) as response:
        assert response.status_code == 200, response.status_code
        sizes["/"] = len(b"".join(response.iter_raw()))
    html = client.get("/").text
    for ref in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        with client.stream("GET", ref, headers={"accept-encoding": "gzip"}) as response:
            assert response.status_code == 200, ref
            sizes[ref] = len(b"".join(response.iter_raw()))
    return {"files": sizes, "total_kb": sum(sizes.values()) / 1024}


def wait_document(client: httpx.Client, document_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document: dict[str, Any] = client.get(f"/ui/api/documents/{document_id}").json()
        if document["status"] != "indexing":
            return document
        time.sleep(0.5)
    raise RuntimeError("the document was not indexed in time")


def one_chat(client: httpx.Client, index: int, document_id: str | None, tokens: int) -> dict[str, Any]:
    chat = client.post("/ui/api/chats", json={"model": MODEL, "options": {"num_predict": tokens}}).json()
    body: dict[str, Any] = {"content": f"Chat {index}: when was the lighthouse repainted in section {index}?"}
    if document_id:
        body["document_ids"] = [document_id]
    posted = client.post(f"/ui/api/chats/{chat['id']}/messages", json=body)
    assert posted.status_code == 201, posted.text
    assistant = posted.json()["assistant"]
    with client.stream("GET", f"/ui/api/messages/{assistant['id']}/stream", timeout=300) as response:
        for line in response.iter_lines():
            if line.startswith("event: done"):
                break
    final: dict[str, Any] = client.get(f"/ui/api/chats/{chat['id']}").json()
    return next(m for m in final["messages"] if m["id"] == assistant["id"])


def run(chats: int, tokens: int, work: Path) -> dict[str, Any]:
    engine_port, web_port = free_port(), free_port()
    base = {**os.environ, "EMBER_LOG_LEVEL": "warning", "EMBER_NUM_THREAD": "2"}
    engine_env = {**base, "OLLAMA_HOST": f"127.0.0.1:{engine_port}", "EMBER_HOME": str(work / "engine-home")}
    home = work / "web-home"
    database_url = f"sqlite:///{home / 'ember.db'}"
    home.mkdir(parents=True)
    cookie, csrf = make_session(database_url)
    web_env = {**base, "EMBER_WEB_HOST": f"127.0.0.1:{web_port}", "EMBER_HOME": str(home),
               "EMBER_ENGINES": f"http://127.0.0.1:{engine_port}"}
    engine = start("engine", engine_env, work / "engine.log")
    processes = [engine]
    try:
        first_200(f"http://127.0.0.1:{engine_port}/api/version", time.perf_counter(), timeout=120)
        started = time.perf_counter()
        web = start("web", web_env, work / "web.log")
        processes.append(web)
        to_login = first_200(f"http://127.0.0.1:{web_port}/login", started)
        to_root = first_200(f"http://127.0.0.1:{web_port}/", started, cookies={"ember_session": cookie})
        time.sleep(5)
        idle = rss_mb(web.pid)
        client = httpx.Client(base_url=f"http://127.0.0.1:{web_port}", cookies={"ember_session": cookie},
                              headers={"x-csrf-token": csrf}, timeout=300)
        transfer = page_transfer(client)
        first = client.post("/ui/api/chats", json={"model": MODEL}).json()
        uploaded = client.post("/ui/api/documents", data={"chat_id": first["id"]},
                               files={"file": ("lighthouse.md", DOCUMENT.encode(), "text/markdown")})
        assert uploaded.status_code in (200, 201, 202), uploaded.text
        document = wait_document(client, uploaded.json()["id"])
        answers = [one_chat(client, i, document["id"] if i == 0 else None, tokens) for i in range(chats)]
        after = rss_mb(web.pid)
        return {"web_start_to_first_200_login_s": to_login, "web_start_to_first_200_root_s": to_root,
                "web_rss_idle_mb": idle, "web_rss_after_mb": after, "web_rss_peak_mb": rss_mb(web.pid, "VmHWM"),
                "chats": chats, "answers_done": sum(a["status"] == "done" for a in answers),
                "document": {k: document[k] for k in ("status", "chunks_total", "size")},
                "cited_answers": sum(bool(a.get("citations")) for a in answers),
                "chat_page_transfer": transfer}
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)


def markdown(result: dict[str, Any]) -> str:
    m = result["measured"]
    return "\n".join([
        f"# Web UI: memory, start time, page weight ({result['date']})", "",
        f"Machine: {result['machine']}. Command: `{result['command']}`.", "",
        "| measure | Ember web role | goal | Open WebUI (issue 11) |", "|---|---|---|---|",
        f"| RSS idle | {m['web_rss_idle_mb']:.0f} MB | | 810-830 MB |",
        f"| RSS after {m['chats']} chats + 1 document indexed | {m['web_rss_after_mb']:.0f} MB "
        f"(peak {m['web_rss_peak_mb']:.0f} MB) | <= 150 MB | |",
        f"| start to first 200 on / (logged in) | {m['web_start_to_first_200_root_s']:.2f} s | <= 2 s | |",
        f"| start to first 200 on /login | {m['web_start_to_first_200_login_s']:.2f} s | | |",
        f"| chat page transferred (gzip) | {m['chat_page_transfer']['total_kb']:.0f} KB | < 300 KB | |",
        "", f"Answers done: {m['answers_done']}/{m['chats']}; document: {m['document']}.", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=32, help="num_predict of each chat answer")
    parser.add_argument("--out", type=Path, default=None, help="write JSON and Markdown results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ember-web-bench-") as tmp:
        measured = run(args.chats, args.tokens, Path(tmp))
    result = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} CPUs, load "
              f"{os.getloadavg()[0]:.1f}", "command": "python bench/web_ui.py " + " ".join(sys.argv[1:]),
              "measured": measured}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"web-ui-{result['date']}"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        stem.with_suffix(".md").write_text(markdown(result))


if __name__ == "__main__":
    main()
