"""Start and stop the three servers under test, each on a free loopback port.

Every server is started in its own process group, so that stopping it also stops whatever it spawned
(Ember's runner processes).  ``Server.stop`` is safe to call more than once; ``run.py`` calls it from a
``finally`` block and from an ``atexit`` hook.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ember.engine.llama import cpu_has_amx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

EMBER = "ember"
LLAMA_SERVER = "llama-server"
LLAMA_CPP_PY = "llama-cpp-python"
ALL_SERVERS = (EMBER, LLAMA_SERVER, LLAMA_CPP_PY)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerConfig:
    gguf: str
    threads: int = 2
    parallel: int = 8      # llama-server -np and EMBER_NUM_PARALLEL
    ctx: int = 4096        # context per sequence / slot
    llama_server_bin: str | None = None
    ember_cmd: list[str] | None = None
    flash_attn: str = "off"  # on, off or auto, the same for every server


@dataclass
class Server:
    name: str
    api: str               # "ollama" or "openai"
    cmd: list[str]
    env: dict[str, str]
    port: int
    ready_path: str
    log_path: Path
    model: str
    tmpdirs: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_after_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 180.0) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 - closed by the child's exit / stop()
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(REPO_ROOT))
        log.close()
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with status {self.proc.returncode} while "
                                       f"starting; log tail:\n{self.log_tail()}")
                try:
                    r = client.get(self.base_url + self.ready_path)
                    if r.status_code == 200:
                        self.ready_after_s = time.perf_counter() - self.started_at
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f}s; log tail:\n{self.log_tail()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)   # the group this script created for the server
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if proc is not None:
            # whatever the server left behind in its own group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for d in self.tmpdirs:
            shutil.rmtree(d, ignore_errors=True)
        self.tmpdirs = []

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])


def build_llama_server() -> str:
    """Run bench/build_llama_server.sh (idempotent) and return the binary's path."""
    env = dict(os.environ)
    env.setdefault("PIP", f"{sys.executable} -m pip")
    out = subprocess.run(["nice", "-n", "10", "bash", str(BENCH_DIR / "build_llama_server.sh")],
                         env=env, stdout=subprocess.PIPE, text=True, check=True)
    path = out.stdout.strip().splitlines()[-1]
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"build_llama_server.sh did not produce an executable: {path!r}")
    return path


def ember_command() -> list[str]:
    exe = shutil.which("ember", path=str(Path(sys.executable).parent)) or shutil.which("ember")
    if exe:
        return [exe, "serve", "--role", "engine"]
    # not `python -m ember.cli.main`: running the module as __main__ imports it twice
    return [sys.executable, "-c", "import sys; from ember.cli.main import main; sys.argv[0] = 'ember'; main()",
            "serve", "--role", "engine"]


# llama_cpp.server with weight repacking off on AMX CPUs, where llama.cpp's AMX kernels segfault;
# its Llama class has no switch for it, so the default model parameters are wrapped.
_LLAMA_CPP_SERVER_MAIN = """
import runpy, sys
import llama_cpp.llama_cpp as bindings  # the module llama_cpp.llama looks the function up in
from ember.engine.llama import cpu_has_amx
if cpu_has_amx():
    _defaults = bindings.llama_model_default_params
    def _no_repack():
        params = _defaults()
        params.use_extra_bufts = False
        return params
    bindings.llama_model_default_params = _no_repack
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def make_server(name: str, cfg: ServerConfig, log_dir: Path) -> Server:
    port = free_port()
    env = dict(os.environ)
    log_path = log_dir / f"{name}.log"
    if name == LLAMA_SERVER:
        if not cfg.llama_server_bin:
            raise RuntimeError("llama-server binary not built")
        cmd = [cfg.llama_server_bin, "-m", cfg.gguf, "-t", str(cfg.threads), "-tb", str(cfg.threads),
               "-np", str(cfg.parallel), "-c", str(cfg.parallel * cfg.ctx), "-cb",
               "-fa", cfg.flash_attn, "--host", "127.0.0.1", "--port", str(port)]
        if cpu_has_amx():
            cmd.append("--no-repack")  # the same kernels Ember uses there (see ember.engine.llama)
        return Server(name, "openai", cmd, env, port, "/health", log_path, model="smollm2")
    if name == LLAMA_CPP_PY:
        cmd = [sys.executable, "-c", _LLAMA_CPP_SERVER_MAIN, "--model", cfg.gguf,
               "--n_threads", str(cfg.threads), "--n_threads_batch", str(cfg.threads),
               "--n_ctx", str(cfg.ctx), "--host", "127.0.0.1", "--port", str(port),
               "--flash_attn", str(cfg.flash_attn == "on").lower(),  # it has no "auto"
               # default True: a waiting request makes the streaming one stop after its current chunk
               # (it ends with [DONE] and no text), which would make it look fast and answer nothing;
               # off, requests queue and are served one at a time, which is what its design is
               "--interrupt_requests", "false"]
        return Server(name, "openai", cmd, env, port, "/v1/models", log_path, model=cfg.gguf)
    if name == EMBER:
        models = tempfile.mkdtemp(prefix="ember-bench-models-")
        env.update({
            "EMBER_HOST": f"127.0.0.1:{port}",
            "EMBER_MODELS": models,
            "EMBER_NUM_THREAD": str(cfg.threads),
            "EMBER_NUM_PARALLEL": str(cfg.parallel),
            "EMBER_CONTEXT_LENGTH": str(cfg.ctx),
            "EMBER_KEEP_ALIVE": "-1",  # stay loaded while the other servers are measured, as they do
            "EMBER_FLASH_ATTENTION": {"on": "true", "off": "false"}.get(cfg.flash_attn, "auto"),
        })
        src = str(REPO_ROOT / "src")
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = list(cfg.ember_cmd or ember_command())
        return Server(name, "ollama", cmd, env, port, "/api/version", log_path, model="smollm2:135m",
                      tmpdirs=[models])
    raise ValueError(f"unknown server {name!r}; choose from {', '.join(ALL_SERVERS)}")
