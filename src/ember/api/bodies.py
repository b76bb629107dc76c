"""Reading request bodies: size limit first, then JSON, each failure a typed error.

Every JSON body is cleaned the same way on every route before any work: nesting deeper than
``MAX_JSON_DEPTH`` is refused, and lone UTF-16 surrogates (JSON ``"\ud800"``, which no UTF-8 text can hold)
are replaced with U+FFFD, as invalid UTF-8 elsewhere is.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request

from ember.config import Settings
from ember.edge import read_body
from ember.errors import BadRequest, RequestTimeout

MAX_JSON_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


async def idle_bounded(chunks: AsyncIterator[bytes], idle: float) -> AsyncIterator[bytes]:
    """Upload chunks, failing when none arrives for ``idle`` seconds: a long upload is fine, a stalled one is not."""
    iterator = aiter(chunks)
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout(f"no upload data for {idle:g}s (EMBER_BODY_TIMEOUT)") from None
        yield chunk


async def read_json(request: Request, settings: Settings, *, allow_empty: bool = False) -> dict[str, Any]:
    """The body as a JSON object. Empty bodies are 400 ``missing request body`` unless allowed."""
    body = await read_body(request, settings.max_body_bytes, settings.body_timeout)
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
    except RecursionError:
        raise BadRequest(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # the one ValueError left: an integer literal longer than Python accepts
        raise BadRequest(f"invalid JSON: a number has more than {sys.get_int_max_str_digits()} digits") from None
    if not isinstance(value, dict):
        raise BadRequest("invalid JSON: expected an object")
    cleaned: dict[str, Any] = clean_json(value)
    return cleaned


def clean_json(value: Any) -> Any:
    """Replace lone surrogates in every string (keys too); refuse nesting deeper than MAX_JSON_DEPTH.

    Iterative, so a hostile body costs time linear in its size and no recursion."""
    root: list[Any] = [value]
    stack: list[tuple[list[Any] | dict[str, Any], int]] = [(root, 0)]
    while stack:
        container, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(container, dict):
            for key in [k for k in container if _SURROGATE.search(k)]:
                container[_SURROGATE.sub("\ufffd", key)] = container.pop(key)
            items: Any = container.items()
        else:
            items = enumerate(container)
        for key, item in list(items):
            if isinstance(item, str):
                if not item.isascii() and _SURROGATE.search(item):
                    container[key] = _SURROGATE.sub("\ufffd", item)
            elif isinstance(item, dict | list):
                stack.append((item, depth + 1))
    return root[0]
