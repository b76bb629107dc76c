"""Ollama's inference and inspection routes. Handlers parse, call the engine, and shape; nothing more."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ember import __version__
from ember.api import ollama_protocol as proto
from ember.api.bodies import read_json
from ember.api.fields import model_field
from ember.api.services import Services, services
from ember.api.streaming import ndjson_response, unless_disconnected
from ember.durations import parse_keep_alive
from ember.engine.service import Event, Started
from ember.errors import BadRequest
from ember.modelfile import render_modelfile, render_parameters
from ember.options import parse_options
from ember.store import LocalModel
from ember.store.gguf import model_info, read_gguf

# Clients gate features on the Ollama version they see (Open WebUI parses it as dotted integers);
# this is the Ollama API level Ember implements, not Ember's own version (sent as ember_version).
OLLAMA_API_VERSION = "0.12.6"
TRUNCATED_HEADER = "X-Ember-Prompt-Truncated"
# Non-streaming answers only (a stream's headers leave before the answer ends; its final chunk says it).
CLOSED_EARLY_HEADER = "X-Ember-Closed-Early"

router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"])
async def root() -> Response:
    return PlainTextResponse("Ollama is running")


@router.api_route("/api/version", methods=["GET", "HEAD"])
async def version() -> Response:
    return JSONResponse({"version": OLLAMA_API_VERSION, "ember_version": __version__})


@router.api_route("/api/tags", methods=["GET", "HEAD"])
async def tags(request: Request) -> Response:
    models = await run_in_threadpool(services(request).store.list)
    return JSONResponse({"models": [model_entry(m) for m in models]})


def model_entry(model: LocalModel) -> dict[str, Any]:
    name = model.name.display
    return {"name": name, "model": name, "modified_at": proto.local_time(model.modified_at),
            "size": model.size, "digest": model.digest, "details": model.details()}


@router.post("/api/show")
async def show(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, svc.settings)
    model, traits = await svc.engine.resolve(model_field(body))
    verbose = body.get("verbose") is True
    info = await run_in_threadpool(_verbose_info, model) if verbose else traits.model_info
    return JSONResponse({
        "license": "\n".join(model.licenses),
        "modelfile": render_modelfile(
            name=model.name.display, model_path=model.model_path, template=model.template, system=model.system,
            params=model.params, licenses=model.licenses, messages=model.messages, adapters=model.adapter_paths,
            projectors=model.projector_paths),
        "parameters": render_parameters(model.params),
        "template": model.template if model.template is not None else (traits.chat_template or ""),
        "system": model.system or "",
        "details": model.details(),
        "messages": model.messages,
        "model_info": info,
        "capabilities": traits.capabilities,
        "modified_at": proto.local_time(model.modified_at),
    })


def _verbose_info(model: LocalModel) -> dict[str, Any]:
    return model_info(read_gguf(model.model_path), verbose=True)


@router.get("/api/ps")
async def ps(request: Request) -> Response:
    rows = services(request).scheduler.running()
    models = []
    for row in rows:
        entry = model_entry(row.model)
        del entry["modified_at"]
        entry.update(expires_at=proto.local_time(row.expires_at), size=row.size, size_vram=0,
                     context_length=row.context_length, active=row.active, queued=row.queued,
                     slots=row.slots, kv_size_per_slot=row.kv_size_per_slot)
        models.append(entry)
    return JSONResponse({"models": models})


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, svc.settings)
    params = proto.generate_params(body)
    if not params.prompt and not params.suffix and not params.context:
        return await _load_only(svc, params.model, params.keep_alive, params.options, "generate")
    return await _respond(request, svc.engine.generate(params), "generate", proto.stream_flag(body))


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, svc.settings)
    params = proto.chat_params(body)
    if not params.messages:
        return await _load_only(svc, params.model, params.keep_alive, params.options, "chat")
    return await _respond(request, svc.engine.chat(params), "chat", proto.stream_flag(body))


async def _load_only(svc: Services, name: str, keep_alive: float | None, options: dict[str, Any],
                     kind: str) -> Response:
    finished = await svc.engine.load(name, keep_alive, options)
    chunk = proto.ChunkShaper(kind).chunk(finished.model, finished)
    return JSONResponse(chunk)


async def _respond(request: Request, events: AsyncGenerator[Event, None], kind: str, stream: bool) -> Response:
    """Wait for the prompt to be ready (errors so far keep their status), then stream or collect."""
    first = await unless_disconnected(request, anext(events))
    assert isinstance(first, Started)
    headers = {TRUNCATED_HEADER: "true"} if first.truncated else None
    shaper = proto.ChunkShaper(kind)

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        try:
            async for event in events:
                chunk = shaper.chunk(first.model, event)
                if chunk is not None:
                    yield chunk
        finally:
            await events.aclose()

    if stream:
        return await ndjson_response(chunks(), headers=headers)
    collected = await unless_disconnected(request, _collect(chunks()))
    if collected and collected[-1].get("closed_early"):
        headers = {**(headers or {}), CLOSED_EARLY_HEADER: "true"}
    return JSONResponse(proto.merge_chunks(kind, collected), headers=headers)


async def _collect(chunks: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c async for c in chunks]


@router.post("/api/embed")
async def embed(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, svc.settings)
    truncate = body.get("truncate", True)
    result = await svc.engine.embed(
        model_field(body), proto.embed_inputs(body), truncate=truncate is not False,
        options=parse_options(body.get("options")), keep_alive=parse_keep_alive(body.get("keep_alive")),
        normalize=True, dimensions=proto.dimensions_field(body))
    response: dict[str, Any] = {"model": result.model, "embeddings": result.vectors,
                                "total_duration": result.total_duration, "load_duration": result.load_duration}
    if result.prompt_tokens:
        response["prompt_eval_count"] = result.prompt_tokens
    return JSONResponse(response)


@router.post("/api/embeddings")
async def embeddings(request: Request) -> Response:
    svc = services(request)
    body = await read_json(request, svc.settings)
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string")
    result = await svc.engine.embed(
        model_field(body), [prompt] if prompt else [], truncate=True,
        options=parse_options(body.get("options")), keep_alive=parse_keep_alive(body.get("keep_alive")),
        normalize=False)
    return JSONResponse({"embedding": result.vectors[0] if result.vectors else []})
