"""The objects a request handler needs, wired once by the app factory and kept on ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from ember.config import Settings

if TYPE_CHECKING:
    from ember.engine.scheduler import Scheduler
    from ember.engine.service import Engine
    from ember.store import ModelStore


@dataclass
class Services:
    settings: Settings
    store: ModelStore
    scheduler: Scheduler
    engine: Engine
    # Set once EMBER_PRELOAD has finished: /readyz fails until then.
    preloaded: bool = False


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
