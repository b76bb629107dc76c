"""The web role in the test process (uvicorn on a loopback port), engines as real processes, and accounts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from ember.config import Settings
from ember.db import Database
from ember.db.keys import create_key
from ember.db.users import create_user, get_user
from ember.gateway.services import Gateway
from tests.server_harness import TEST_DEFAULTS, free_port

ENGINE_KEY = "engine-secret-for-tests-0123456789"


def serve_in_thread(app: Starlette, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test web server did not start")
        time.sleep(0.05)
    return server, thread


@dataclass
class RunningWeb:
    settings: Settings
    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}"

    @property
    def gateway(self) -> Gateway:
        found: Gateway = self.app.state.gateway
        return found

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 120), headers=headers, **kwargs)

    def flush_audit(self) -> None:
        assert self.gateway.audit.flush(10), "audit rows were not written in time"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_web(database: Database, engines: list[str], *, check_interval: float = 0.5, cooldown: float = 2.0,
              **overrides: Any) -> RunningWeb:
    from ember.gateway.app import create_web_app

    port = free_port()
    values: dict[str, Any] = {"engine_key": ENGINE_KEY, "request_timeout": 120.0, **overrides}
    settings = Settings.from_env({}, web_host=f"127.0.0.1:{port}", engines=tuple(engines), **values)
    app = create_web_app(settings, database=database, check_interval=check_interval, cooldown=cooldown)
    server, thread = serve_in_thread(app, port)
    return RunningWeb(settings, app, server, thread)


@dataclass
class Accounts:
    """Users and keys in the web role's database; names are unique per call so tests never collide."""

    database: Database
    made: list[str] = field(default_factory=list)

    def user(self, role: str = "user") -> str:
        name = f"{role}-{uuid.uuid4().hex[:8]}"
        create_user(self.database, name, "password-for-tests", role)
        return name

    def key(self, *, scopes: tuple[str, ...] = ("chat", "embed", "models"), user: str | None = None,
            **limits: Any) -> str:
        owner = user or self.shared_user
        _, secret = create_key(self.database, name=f"key-{uuid.uuid4().hex[:8]}", user_name=owner,
                               scopes=scopes, **limits)
        self.made.append(secret)
        return secret

    @property
    def shared_user(self) -> str:
        if get_user(self.database, "tester") is None:
            create_user(self.database, "tester", "password-for-tests", "user")
        return "tester"


@dataclass
class EngineProcess:
    """``ember serve --role engine`` as a child process: what kill -9 is about."""

    port: int
    models_dir: Path
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "ember.cli.main", "serve", "--role", "engine"],
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"engine exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/version", headers={"Authorization": f"Bearer {ENGINE_KEY}"},
                             timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("engine did not start in time")

    def kill9(self) -> None:
        """SIGKILL the engine and its runners (its process group), like the OOM killer would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def engine_process(tmp: Path, models_dir: Path, **env: str) -> EngineProcess:
    port = free_port()
    values = {**os.environ, "EMBER_HOST": f"127.0.0.1:{port}", "EMBER_MODELS": str(models_dir),
              "EMBER_HOME": str(tmp / f"home-{port}"), "EMBER_ENGINE_KEY": ENGINE_KEY,
              "EMBER_LOG_LEVEL": "warning", **{k: str(v) for k, v in TEST_DEFAULTS_ENV.items()}, **env}
    return EngineProcess(port, models_dir, tmp / f"engine-{port}.log", values)


TEST_DEFAULTS_ENV = {f"EMBER_{k.upper()}": str(v) for k, v in TEST_DEFAULTS.items()}
