"""``POST /api/pull`` and ``POST /api/push``: progress streams from the registry client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ember.api.bodies import read_json
from ember.api.fields import flag, model_field
from ember.api.services import services
from ember.api.streaming import collect_last, ndjson_response
from ember.store import ModelStore, registry

router = APIRouter()

Transfer = Callable[..., AsyncIterator[dict[str, Any]]]


@router.post("/api/pull")
async def pull(request: Request) -> Response:
    return await _transfer(request, registry.pull)


@router.post("/api/push")
async def push(request: Request) -> Response:
    return await _transfer(request, registry.push)


async def _transfer(request: Request, operation: Transfer) -> Response:
    """Shared body handling; ``username``/``password`` are accepted and ignored, as in Ollama."""
    svc = services(request)
    body = await read_json(request, svc.settings)
    name = model_field(body)
    insecure = flag(body, "insecure", False)
    stream = flag(body, "stream", True)
    store: ModelStore = svc.store
    events = operation(store, name, insecure=insecure)
    if stream:
        return await ndjson_response(events)
    return JSONResponse(await collect_last(events))
