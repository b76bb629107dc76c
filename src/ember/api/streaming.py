"""NDJSON streaming with Ollama's error rules.

An error raised before the first item becomes a normal JSON error with its status; after the first byte it
becomes a final ``{"error": ...}`` line (status stays 200), which every Ollama client treats as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ember.edge import ollama_error_body, unexpected_error_message
from ember.errors import ClientGone, EmberError

T = TypeVar("T")

NDJSON = "application/x-ndjson"


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


async def ndjson_response(
    items: AsyncIterator[dict[str, Any]], headers: dict[str, str] | None = None
) -> Response:
    """Start the stream only once the first item exists, so early errors keep their HTTP status."""
    try:
        first = await anext(items)
    except StopAsyncIteration:
        return StreamingResponse(iter(()), media_type=NDJSON, headers=headers)
    return StreamingResponse(_lines(first, items), media_type=NDJSON, headers=headers)


async def _lines(first: dict[str, Any], rest: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    yield (dumps(first) + "\n").encode()
    try:
        async for item in rest:
            yield (dumps(item) + "\n").encode()
    except EmberError as exc:
        yield (dumps(ollama_error_body(exc.message)) + "\n").encode()
    except Exception as exc:  # an unexpected bug must still end the stream with an error line
        yield (dumps(ollama_error_body(unexpected_error_message(exc, "NDJSON stream"))) + "\n").encode()
    finally:
        await _close(rest)


async def _close(items: AsyncIterator[dict[str, Any]]) -> None:
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()


async def collect_last(items: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    """Non-streaming form of a progress stream (pull/push/create): the last object."""
    last: dict[str, Any] = {}
    async for item in items:
        last = item
    return last


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` (a queue wait, a whole non-streaming answer); if the client disconnects first,
    cancel it, which leaves the queue or cancels generation on the runner, and raise ClientGone.

    Streaming responses need no help: Starlette cancels their body iterator on disconnect."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise ClientGone()


async def _disconnected(request: Request) -> None:
    """Return once the client has gone; the body was read already, so receive() waits for that alone."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
