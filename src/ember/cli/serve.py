"""`ember serve`: logging, the bind-address warning, and uvicorn."""

from __future__ import annotations

import logging
import os
import tempfile

import uvicorn

from ember.api.app import create_app
from ember.api.hosts import is_loopback
from ember.config import Settings

log = logging.getLogger("ember")


def run_server(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not is_loopback(settings.bind_host):
        log.warning("!! ember is listening on %s, which is not loopback, and the engine API has no API key: "
                    "anyone who can reach this address can use it. Bind to 127.0.0.1 or put the gateway in "
                    "front.", settings.bind_host)
    if settings.tmpdir is not None:
        # Runners inherit the environment, so one setting moves every scratch file.
        settings.tmpdir.expanduser().mkdir(parents=True, exist_ok=True)
        os.environ["TMPDIR"] = str(settings.tmpdir.expanduser())
        tempfile.tempdir = None
    log.info("ember serving on %s (models in %s)", settings.base_url, settings.models_path)
    app = create_app(settings)
    uvicorn.run(app, host=settings.bind_host, port=settings.bind_port, log_level=settings.log_level.lower(),
                timeout_graceful_shutdown=5)
