"""Model management routes: create, blobs, copy, delete. Thin: validation and work live in ember.store.

Blocking file work (hashing, linking, writing manifests) runs in worker threads so the event loop stays
free for inference streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ember.api.bodies import idle_bounded, read_json
from ember.api.services import services
from ember.api.streaming import collect_last, ndjson_response
from ember.errors import BadRequest, BlobNotFound
from ember.store.create import create_model
from ember.store.digests import normalize_digest

router = APIRouter()

@router.post("/api/create")
async def create(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, svc.settings)
    progress = _in_threads(create_model(svc.store, body))
    if body.get("stream", True) is False:
        return JSONResponse(await collect_last(progress))
    return await ndjson_response(progress)


async def _in_threads(items: Iterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """Drive a blocking generator one step per worker-thread call (its items are never None)."""
    try:
        while (item := await run_in_threadpool(next, items, None)) is not None:
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            await run_in_threadpool(close)


@router.head("/api/blobs/{digest}")
async def blob_exists(request: Request, digest: str) -> Response:
    store = services(request).store
    normalized = normalize_digest(digest)
    if not await run_in_threadpool(store.has_blob, normalized):
        raise BlobNotFound(f'blob "{normalized}" not found')
    return Response(status_code=200)


@router.post("/api/blobs/{digest}")
async def upload_blob(request: Request, digest: str) -> Response:
    """Stream the body to disk while hashing; 201 when created, 200 when the blob was already there."""
    store = services(request).store
    normalized = normalize_digest(digest)
    if await run_in_threadpool(store.has_blob, normalized):
        return Response(status_code=200)
    await store.write_blob_async(idle_bounded(request.stream(), services(request).settings.body_timeout), normalized)
    return Response(status_code=201)


@router.post("/api/copy")
async def copy(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, svc.settings)
    source, destination = body.get("source"), body.get("destination")
    if not isinstance(source, str) or not source or not isinstance(destination, str) or not destination:
        raise BadRequest("source and destination are required")
    await run_in_threadpool(svc.store.copy, source, destination)
    return Response(status_code=200)


@router.delete("/api/delete")
async def delete(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, svc.settings)
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("model is required")
    model = await run_in_threadpool(svc.store.resolve, name)
    await svc.scheduler.unload(model)  # a deleted model must not keep serving (and pinning its blob)
    await run_in_threadpool(svc.store.delete, model.name)
    return Response(status_code=200)
