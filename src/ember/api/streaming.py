"""NDJSON streaming with Ollama's error rules.

An error raised before the first item becomes a normal JSON error with its status; after the first byte it
becomes a final ``{"error": ...}`` line (status stays 200), which every Ollama client treats as an error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response, StreamingResponse

from ember.api.errors import ollama_error_body, unexpected_error_message
from ember.errors import EmberError

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
