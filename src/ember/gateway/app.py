"""The web role's app factory: the one place where the gateway's parts are built and wired."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
import httpx
from starlette.applications import Starlette

from ember.config import Settings, is_loopback, split_host
from ember.db.database import Database
from ember.gateway.audit import AuditWriter
from ember.gateway.auth import Authenticator
from ember.gateway.enforced import Enforced
from ember.gateway.errors import install_error_handlers
from ember.gateway.guards import Guards
from ember.gateway.limits import build_limiter
from ember.gateway.metrics import GatewayMetrics
from ember.gateway.pipeline import Pipeline
from ember.gateway.pool import EnginePool
from ember.gateway.services import Gateway
from ember.gateway.setup import offer_setup_link

log = logging.getLogger(__name__)


def anonymous_allowed(settings: Settings) -> bool:
    """EMBER_ANONYMOUS holds only while the web role is bound to loopback."""
    if not settings.anonymous:
        return False
    host = split_host(settings.web_host)[0]
    if is_loopback(host):
        return True
    log.warning("EMBER_ANONYMOUS=true is ignored: the web role is bound to %s, which is not loopback, so every "
                "request needs an API key", host)
    return False


def create_web_app(settings: Settings, *, database: Database, transport: httpx.AsyncBaseTransport | None = None,
                   guards: Guards | None = None, check_interval: float = 5.0, cooldown: float = 10.0) -> Starlette:
    """The web role. ``database`` is open and migrated; ``transport`` replaces the network for tests."""
    guards = guards or Enforced(settings, database, build_limiter(settings), GatewayMetrics())
    client = httpx.AsyncClient(transport=transport, limits=httpx.Limits(max_connections=1000,
                                                                         max_keepalive_connections=200))
    engine_headers = {"authorization": f"Bearer {settings.engine_key}"} if settings.engine_key else {}
    pool = EnginePool(settings.engine_urls, client, headers=engine_headers, check_interval=check_interval,
                      cooldown=cooldown, on_health=guards.engine_health)
    audit = AuditWriter(database, retention_s=settings.audit_retention,
                        body_retention_s=settings.audit_body_retention)
    auth = Authenticator(database, anonymous=anonymous_allowed(settings))
    pipeline = Pipeline(settings, auth, pool, audit, guards)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        audit.start()
        await anyio.to_thread.run_sync(offer_setup_link, settings, database)
        await pool.start()
        log.info("ember web role forwarding to %s", ", ".join(n.url for n in pool.nodes))
        try:
            yield
        finally:
            await pool.close()
            await client.aclose()
            await guards.aclose()
            await anyio.to_thread.run_sync(audit.close)

    from ember.gateway.routes import routes

    app = Starlette(routes=routes(), lifespan=lifespan)
    app.state.gateway = Gateway(settings=settings, database=database, client=client, auth=auth, pool=pool,
                                audit=audit, guards=guards, pipeline=pipeline)
    install_error_handlers(app)
    return app
