"""Request bodies at the gateway: bounded in size and in time, parsed only as far as routing needs.

The engine validates every field itself; the gateway reads the JSON to find the model, to apply the model
policy and to know whether the client asked for a stream. Bytes are forwarded unchanged unless policy edits
the body.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request

from ember.errors import BadRequest, PayloadTooLarge, RequestTimeout


async def read_body(request: Request, max_bytes: int, timeout: float) -> bytes:
    """The whole body, at most ``max_bytes``, arriving within ``timeout`` seconds (a trickle must not hold us)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body too large: {declared} bytes exceeds the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(f"request body too large: exceeds the limit of {max_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout:g}s (EMBER_BODY_TIMEOUT)") from None
    return b"".join(chunks)


def parse_object(raw: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    """A JSON object, or BadRequest. Too-deep nesting (RecursionError) is a bad request too, not a crash."""
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("missing request body")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"invalid JSON body: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object")
    return value


def model_of(body: dict[str, Any], *keys: str) -> str | None:
    """The first of ``keys`` present as a non-empty string; a non-string model is a 400."""
    for key in keys:
        value = body.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise BadRequest(f"{key} must be a string")
        return value
    return None


def wants_stream(body: dict[str, Any], *, default: bool) -> bool:
    value = body.get("stream", default)
    return value if isinstance(value, bool) else default
