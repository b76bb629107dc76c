"""Reading request bodies: size limit first, then JSON, each failure a typed error."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from ember.errors import BadRequest, PayloadTooLarge


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body too large: {declared} bytes exceeds the limit of {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"request body too large: exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, max_bytes: int, *, allow_empty: bool = False) -> dict[str, Any]:
    """The body as a JSON object. Empty bodies are 400 ``missing request body`` unless allowed."""
    body = await read_body(request, max_bytes)
    if not body.strip():
        if allow_empty:
            return {}
        raise BadRequest("missing request body")
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise BadRequest("invalid JSON: body is not UTF-8") from None
    if not isinstance(value, dict):
        raise BadRequest("invalid JSON: expected an object")
    return value
