"""The web role's wired parts, built once by ``create_web_app`` and reached from handlers through the app."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from starlette.requests import Request

from ember.config import Settings
from ember.db.database import Database
from ember.gateway.audit import AuditWriter
from ember.gateway.auth import Authenticator
from ember.gateway.guards import Guards
from ember.gateway.pipeline import Pipeline
from ember.gateway.pool import EnginePool


@dataclass
class Gateway:
    settings: Settings
    database: Database
    client: httpx.AsyncClient
    auth: Authenticator
    pool: EnginePool
    audit: AuditWriter
    guards: Guards
    pipeline: Pipeline


def gateway(request: Request) -> Gateway:
    found: Gateway = request.app.state.gateway
    return found
