"""The engine app factory: the one place where settings, store, scheduler and routes are wired."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from ember import __version__
from ember.api.engine_key import EngineKeyRequired, OpenEngineWarning, check_exposure
from ember.api.errors import install_error_handlers
from ember.api.hosts import LocalHostOnly
from ember.api.metrics import EngineMetrics, RequestMetrics
from ember.api.preload import preload
from ember.api.services import Services
from ember.config import Settings, is_loopback
from ember.engine.scheduler import RunnerFactory, Scheduler
from ember.engine.service import Engine
from ember.store import ModelStore
from ember.store.bundled import register_bundled

log = logging.getLogger(__name__)

_DEFAULT_ORIGINS = (
    "http://localhost", "https://localhost", "http://localhost:*", "https://localhost:*",
    "http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:*", "https://127.0.0.1:*",
    "http://0.0.0.0", "https://0.0.0.0", "http://0.0.0.0:*", "https://0.0.0.0:*",
    "app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*",
)
_ALLOWED_HEADERS = ["Authorization", "Content-Type", "User-Agent", "Accept", "X-Requested-With", "OpenAI-Beta",
                    "x-stainless-arch", "x-stainless-lang", "x-stainless-os", "x-stainless-package-version",
                    "x-stainless-retry-count", "x-stainless-runtime", "x-stainless-runtime-version",
                    "x-stainless-async", "x-stainless-helper-method", "x-stainless-poll-helper",
                    "x-stainless-custom-poll-interval", "x-stainless-timeout"]


def origins_regex(extra: tuple[str, ...]) -> str:
    patterns = [fnmatch.translate(o).removesuffix(r"\Z").removeprefix("(?s:").removesuffix(")")
                for o in (*_DEFAULT_ORIGINS, *extra)]
    return "^(?:" + "|".join(f"(?:{p})" for p in patterns) + ")$"


def create_app(settings: Settings, *, runner_factory: RunnerFactory | None = None) -> FastAPI:
    """The engine app. ``runner_factory`` defaults to runner child processes; tests may pass a fake.

    Raises UnsafeExposure for a non-loopback bind without EMBER_ENGINE_KEY (unless allowed to run open)."""
    runs_open = check_exposure(settings)
    store = ModelStore(settings.models_path, noprune=settings.noprune)
    scheduler = Scheduler(settings, runner_factory)
    metrics = EngineMetrics(scheduler)
    engine = Engine(settings, store, scheduler, observer=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store.init()
        if settings.bundled_model and register_bundled(store, settings.bundled_model):
            log.info("registered the bundled model as %s", settings.bundled_model)
        if settings.preload:
            await preload(store, settings.preload)
        app.state.services.preloaded = True
        await scheduler.start()
        try:
            yield
        finally:
            await scheduler.close()

    app = FastAPI(title="Ember", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.services = Services(settings=settings, store=store, scheduler=scheduler, engine=engine)
    app.state.metrics = metrics
    install_error_handlers(app)
    app.add_middleware(CORSMiddleware, allow_origin_regex=origins_regex(settings.origins),
                       allow_methods=["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"],
                       allow_headers=_ALLOWED_HEADERS)
    if is_loopback(settings.bind_host):
        app.add_middleware(LocalHostOnly)
    if settings.engine_key:
        app.add_middleware(EngineKeyRequired, key=settings.engine_key)
    elif runs_open:
        app.add_middleware(OpenEngineWarning, bind_host=settings.bind_host)
    app.add_middleware(RequestMetrics, metrics=metrics)  # outermost: sees every answer, refusals included
    _include_routers(app)
    return app


def _include_routers(app: FastAPI) -> None:
    from ember.api import metrics, models_routes, ollama_routes, openai_routes, probe_routes, registry_routes

    for module in (probe_routes, ollama_routes, models_routes, registry_routes, openai_routes, metrics):
        app.include_router(module.router)
