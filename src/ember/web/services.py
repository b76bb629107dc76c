"""The web UI's wired parts, built once by ``create_app`` and reached from handlers through the app."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from ember.config import Settings
from ember.db.database import Database
from ember.gateway.services import Gateway


@dataclass
class WebUI:
    settings: Settings
    database: Database
    gateway: Gateway


def web(request: Request) -> WebUI:
    found: WebUI = request.app.state.web
    return found
