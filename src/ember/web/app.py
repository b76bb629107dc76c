"""The web role with its UI: the gateway's app plus the UI's pages, assets and JSON routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette

from ember.config import Settings
from ember.db.database import Database
from ember.gateway.app import create_web_app
from ember.web.documents.retrieve import DocumentRetriever
from ember.web.housekeeping import purge_sessions_forever
from ember.web.login_limits import build_login_limits
from ember.web.routes import ui_routes
from ember.web.services import WebUI


def create_app(settings: Settings, *, database: Database, transport: httpx.AsyncBaseTransport | None = None,
               **gateway_options: Any) -> Starlette:
    """The web role: ``database`` is open and migrated; ``transport`` replaces the network for tests."""
    app = create_web_app(settings, database=database, transport=transport, **gateway_options)
    ui = WebUI(settings=settings, database=database, gateway=app.state.gateway,
               login_limits=build_login_limits(settings))
    ui.retriever = DocumentRetriever(ui)
    app.state.web = ui
    app.router.routes[0:0] = ui_routes()  # the UI's "/" comes before the gateway's plain-text one
    gateway_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with gateway_lifespan(app):
            await ui.indexer.forget_interrupted()
            sweeper = asyncio.create_task(purge_sessions_forever(database), name="ember-session-purge")
            try:
                yield
            finally:  # answers being generated store how far they got before the gateway closes
                sweeper.cancel()
                await ui.indexer.close()  # documents being indexed end failed, without chunks
                await ui.generations.close()
                if ui.login_limits is not None:
                    await ui.login_limits.aclose()

    app.router.lifespan_context = lifespan
    return app
