"""A real Ember server (uvicorn on a loopback port, runners as child processes) inside the test process."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from ember.api.app import create_app
from ember.api.services import Services
from ember.config import Settings

TEST_DEFAULTS: dict[str, Any] = {
    "context_length": 2048,
    "num_parallel": 4,
    "num_thread": 2,
    "max_predict": 256,
    "request_timeout": 120.0,
    "stall_timeout": 30.0,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    settings: Settings
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.settings.base_url

    @property
    def services(self) -> Services:
        found: Services = self.app.state.services
        return found

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 120), **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(models_dir: Path, **overrides: Any) -> RunningServer:
    values = {**TEST_DEFAULTS, **overrides}
    settings = Settings.from_env({}, host=f"127.0.0.1:{free_port()}", models_dir=models_dir, **values)
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.bind_host, port=settings.bind_port, log_level="warning",
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    return RunningServer(settings, app, server, thread)
