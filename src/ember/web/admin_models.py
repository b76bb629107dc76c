"""Admin: models. Only the page lives here: its script calls the gateway's own /api/tags, /api/ps, /api/pull and
/api/delete with the session cookie, so model management goes through the gateway's policy, limits and audit."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ember.web.admin_guard import admin_page


async def models_page(request: Request) -> Response:
    return await admin_page(request, "admin_models.html", section="models")
