"""The UI's routes, put in front of the gateway's by ``create_app``. Handlers are thin: they call web modules."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from ember.web.assets import static_file
from ember.web.pages import index


def ui_routes() -> list[BaseRoute]:
    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/static/{path:path}", static_file, methods=["GET", "HEAD"]),
    ]
