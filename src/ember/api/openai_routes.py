"""OpenAI-compatible routes under /v1. Handlers parse, call the engine and shape; the mapping lives in
``openai_protocol``. Typed errors become OpenAI's error envelope in ``api/errors.py``.

The ``Authorization`` header is accepted and ignored here (OpenAI SDKs insist on sending an API key).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ember.api import openai_protocol as proto
from ember.api import openai_shaping as shaping
from ember.api.bodies import read_json
from ember.api.ollama_routes import CLOSED_EARLY_HEADER, TRUNCATED_HEADER
from ember.api.services import services
from ember.api.streaming import unless_disconnected
from ember.edge import openai_error_body, unexpected_error_message
from ember.engine.service import Event, Started
from ember.errors import EmberError, InvalidModelName, ModelNotFound

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    svc = services(request)
    req = proto.chat_request(await read_json(request, svc.settings))
    return await _respond(request, svc.engine.chat(req.params), shaping.ChatShaper, req.stream, req.include_usage)


@router.post("/v1/completions")
async def completions(request: Request) -> Response:
    svc = services(request)
    req = proto.completion_request(await read_json(request, svc.settings))
    return await _respond(request, svc.engine.generate(req.params), shaping.CompletionShaper, req.stream,
                          req.include_usage)


@router.post("/v1/embeddings")
async def embeddings(request: Request) -> Response:
    svc = services(request)
    req = proto.embedding_request(await read_json(request, svc.settings))
    result = await svc.engine.embed(req.model, req.inputs, truncate=req.truncate, options=req.options,
                                    keep_alive=req.keep_alive, normalize=True, dimensions=req.dimensions)
    return JSONResponse(shaping.embedding_response(result, req.base64))


@router.get("/v1/models")
async def list_models(request: Request) -> Response:
    models = await run_in_threadpool(services(request).store.list)
    return JSONResponse(shaping.model_list(list(models)))


@router.get("/v1/models/{name:path}")
async def retrieve_model(request: Request, name: str) -> Response:
    # Model names may contain "/" (namespace/model:tag), hence the path converter.
    try:
        model = await run_in_threadpool(services(request).store.resolve, name)
    except InvalidModelName:
        raise ModelNotFound(name) from None  # to an OpenAI client an id that cannot exist is simply unknown
    return JSONResponse(shaping.model_object(model))


async def _respond(request: Request, events: AsyncGenerator[Event, None],
                   make_shaper: Callable[[str, bool], shaping.Shaper], stream: bool, include_usage: bool) -> Response:
    """Wait for the prompt to be ready, so errors so far (unknown model, full queue, bad options) keep their
    HTTP status; then stream SSE chunks or collect one response object."""
    first = await unless_disconnected(request, anext(events))
    assert isinstance(first, Started)
    shaper = make_shaper(first.model, include_usage)
    headers = {TRUNCATED_HEADER: "true"} if first.truncated else {}
    if stream:
        return StreamingResponse(_sse(events, shaper), media_type="text/event-stream",
                                 headers={**headers, "Cache-Control": "no-cache"})
    await unless_disconnected(request, _feed_all(events, shaper))
    if shaper.finished is not None and shaper.finished.closed_early:
        headers[CLOSED_EARLY_HEADER] = "true"
    return JSONResponse(shaper.response(), headers=headers)


async def _feed_all(events: AsyncGenerator[Event, None], shaper: shaping.Shaper) -> None:
    try:
        async for event in events:
            shaper.feed(event)
    finally:
        await events.aclose()


async def _sse(events: AsyncGenerator[Event, None], shaper: shaping.Shaper) -> AsyncIterator[bytes]:
    """SSE body. After the first byte the status is fixed at 200, so a failure becomes a final
    ``data: {"error": ...}`` event (OpenAI SDKs raise it) and the stream ends without [DONE]."""
    try:
        for chunk in shaper.opening():
            yield shaping.sse(chunk)
        async for event in events:
            for chunk in shaper.feed(event):
                yield shaping.sse(chunk)
        yield shaping.SSE_DONE
    except EmberError as exc:
        yield shaping.sse(openai_error_body(exc.message, exc.kind))
    except Exception as exc:  # a bug must still end the stream with an error the client can see
        yield shaping.sse(openai_error_body(unexpected_error_message(exc, "SSE stream")))
    finally:
        await events.aclose()
