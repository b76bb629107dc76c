"""Request bodies at the gateway: bounded in size and in time, parsed only as far as routing needs.

The engine validates every field itself; the gateway reads the JSON to find the model, to apply the model
policy and to know whether the client asked for a stream. Bytes are forwarded unchanged unless policy edits
the body.
"""

from __future__ import annotations

import json
from typing import Any

from ember.errors import BadRequest


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
