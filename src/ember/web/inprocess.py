"""Calling the gateway's own pipeline from inside the web role, as a logged-in user.

The UI's chat turns run in background tasks (so an answer outlives the browser tab), yet they must meet the
same policy, limits and audit as the user's own requests. So they go through ``Pipeline.handle`` with a
Request made here: the JSON body is received once, and the "client" never disconnects; the task stops the
answer by cancelling or closing the relay instead.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from ember.db.sessions import WebUser
from ember.gateway import routes_table as table
from ember.gateway.auth import Principal
from ember.gateway.pipeline import Call
from ember.gateway.proxy import RelayResponse
from ember.gateway.services import Gateway


def internal_request(path: str, body: dict[str, Any], client: str | None) -> Request:
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()  # never a disconnect: the task decides when the answer ends
        raise AssertionError("unreachable")

    scope = {"type": "http", "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
             "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
             "client": (client, 0) if client else None, "server": None}
    return Request(scope, receive)


async def chat_as(gateway: Gateway, user: WebUser, body: dict[str, Any], client: str | None) -> Response:
    """POST /api/chat through the pipeline as ``user``: a RelayResponse, or an error response."""

    async def forward(call: Call) -> RelayResponse:
        return await gateway.pipeline.forward(call)

    request = internal_request("/api/chat", body, client)
    return await gateway.pipeline.handle(request, table.FORWARDED["/api/chat"], forward,
                                         principal=Principal(key=None, user=user))


async def body_chunks(response: Response) -> AsyncGenerator[bytes, None]:
    """The bytes of a pipeline answer: a relay's as they come, any other response's at once."""
    if isinstance(response, RelayResponse):
        try:
            async for chunk in response.chunks:
                yield chunk
        finally:  # closing the relay closes the engine connection, and the engine stops generating
            aclose = getattr(response.chunks, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
    else:
        yield bytes(response.body)


async def read_all(response: Response, limit: int = 1 << 20) -> bytes:
    chunks: list[bytes] = []
    size = 0
    iterator = body_chunks(response)
    try:
        async for chunk in iterator:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                break
    finally:
        await iterator.aclose()
    return b"".join(chunks)


def error_text(raw: bytes, status: int) -> str:
    """The message of an error body in Ollama's (or OpenAI's) shape, or the raw text."""
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        error = error.get("message")
    text = error if isinstance(error, str) and error else raw.decode("utf-8", "replace").strip()
    return text or f"the request failed with status {status}"
