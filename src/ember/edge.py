"""The HTTP edge both servers share (the engine API and the web role): error bodies in each API's shape,
request bodies bounded in size and time, and the answer to an unexpected exception.

``/v1/...`` paths answer in OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``, everything
else in Ollama's ``{"error": "..."}``. An unexpected exception never reaches a client as its text: the client
gets a generic message with a request id, and the log gets the traceback under the same id.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any, Literal

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ember.errors import PayloadTooLarge, RequestTimeout

log = logging.getLogger(__name__)

Api = Literal["ollama", "openai"]


def api_of(path: str) -> Api:
    return "openai" if path.startswith("/v1/") else "ollama"


def ollama_error_body(message: str) -> dict[str, Any]:
    return {"error": message}


def openai_error_body(message: str, kind: str = "api_error", param: str | None = None,
                      code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_body(api: Api, message: str, kind: str = "api_error", code: str | None = None) -> dict[str, Any]:
    return openai_error_body(message, kind, code=code) if api == "openai" else ollama_error_body(message)


def http_error_response(path: str, exc: HTTPException) -> Response:
    """Starlette's own errors (unknown path, wrong method) as each API answers them; Ollama's are plain text."""
    if api_of(path) == "openai":
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(openai_error_body(str(exc.detail), kind), status_code=exc.status_code)
    if exc.status_code == 404:
        return PlainTextResponse("404 page not found", status_code=404)
    if exc.status_code == 405:
        return PlainTextResponse("405 method not allowed", status_code=405)
    return JSONResponse(ollama_error_body(str(exc.detail)), status_code=exc.status_code)


def unexpected_error_message(exc: BaseException, where: str) -> str:
    """Log ``exc`` with its traceback under a new request id; return what the client may see."""
    request_id = uuid.uuid4().hex[:16]
    log.error("internal error on %s [request id %s]", where, request_id, exc_info=exc)
    return f"internal server error (request id {request_id})"


class UnexpectedErrors:
    """Answer an unexpected exception with a generic 500 (logged once, with its request id).

    A middleware rather than an ``Exception`` handler: Starlette re-raises after calling such a handler,
    so the server would log the traceback a second time, without the id. ``render`` makes the 500 response
    for a path and a message."""

    def __init__(self, app: ASGIApp, render: Callable[[str, str], Response]) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            path = scope.get("path", "")
            message = unexpected_error_message(exc, f"{scope.get('method')} {path}")
            if not started:  # else the status went out already; the stream ended short, which clients see
                await self.render(path, message)(scope, receive, send)


async def read_body(request: Request, max_bytes: int, timeout: float) -> bytes:
    """The whole body, at most ``max_bytes`` of it, received within ``timeout`` seconds (a client that
    trickles bytes must not hold a request open forever)."""
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
