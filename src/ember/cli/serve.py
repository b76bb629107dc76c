"""`ember serve`: logging, the roles (engine, web, or both in one process), and uvicorn on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
from collections.abc import Generator
from types import FrameType
from typing import Any

import uvicorn

from ember.config import Settings, split_host
from ember.db.database import Database

log = logging.getLogger("ember")


def run_server(settings: Settings) -> None:
    """Run ``settings.role``: the engine, the web role, or both (``all``) in one process and one event loop.

    Raises EmberError (UnsafeExposure, DatabaseUnavailable) before anything listens if the setup is unsafe or
    the database cannot be opened."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    configs = []
    if settings.role in ("all", "engine"):
        configs.append(_engine_config(settings))
    if settings.role in ("all", "web"):
        configs.append(_web_config(settings))
    _serve(configs)


def _engine_config(settings: Settings) -> uvicorn.Config:
    if settings.tmpdir is not None:
        # Runners inherit the environment, so one setting moves every scratch file.
        settings.tmpdir.expanduser().mkdir(parents=True, exist_ok=True)
        os.environ["TMPDIR"] = str(settings.tmpdir.expanduser())
        tempfile.tempdir = None
    from ember.api.app import create_app  # here, not at the top: a web-role process never loads the engine's code

    app = create_app(settings)  # refuses a non-loopback bind without EMBER_ENGINE_KEY
    log.info("ember engine serving on %s (models in %s)", settings.base_url, settings.models_path)
    return _config(app, settings.bind_host, settings.bind_port, settings)


def _web_config(settings: Settings) -> uvicorn.Config:
    from ember.web.app import create_app  # here, not at the top: an engine process never loads the UI's code

    database = Database.open(settings.database)
    database.migrate()
    app = create_app(settings, database=database)
    host, port = split_host(settings.web_host)
    log.info("ember web role serving on http://%s:%d (database %s)", host, port, database.display_url)
    return _config(app, host, port, settings)


def _config(app: Any, host: str, port: int, settings: Settings) -> uvicorn.Config:
    # Behind a trusted proxy the client is the one X-Forwarded-For names, not the proxy: otherwise every user
    # would share the proxy's per-address login limit.
    return uvicorn.Config(app, host=host, port=port, log_level=settings.log_level.lower(),
                          timeout_graceful_shutdown=5, proxy_headers=True,
                          forwarded_allow_ips=settings.trusted_proxies)


class _SharedSignals(uvicorn.Server):
    """A server that leaves signal handling to ``_serve``, which stops every server of the process at once."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _serve(configs: list[uvicorn.Config]) -> None:
    if len(configs) == 1:
        uvicorn.Server(configs[0]).run()
        return
    servers = [_SharedSignals(config) for config in configs]

    def stop(sig: int, frame: FrameType | None) -> None:
        for server in servers:
            server.handle_exit(sig, frame)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        # uvicorn's loop factory picks uvloop (as a single uvicorn.run would), for both servers on one loop.
        with asyncio.Runner(loop_factory=configs[0].get_loop_factory()) as runner:
            runner.run(_serve_all(servers))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


async def _serve_all(servers: list[_SharedSignals]) -> None:
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:  # one stopped (a signal, or it failed to start): stop the other too
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()
