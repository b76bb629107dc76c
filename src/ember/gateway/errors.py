"""The web role's one mapping from errors to HTTP: each API gets its own error shape.

``/v1/...`` answers in OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``, everything else in
Ollama's ``{"error": "..."}``. A 401 carries ``WWW-Authenticate: Bearer``. Errors after a stream has started
become the stream's last item (an NDJSON line or an SSE event) in the same shapes.

The engine has its own mapping in ``ember.api.errors``; the gateway may not import ``api`` (it reaches engines
over HTTP only), and the two shapes are small enough that repeating them is cheaper than a shared layer.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Literal

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ember.errors import EmberError, Unauthorized

log = logging.getLogger(__name__)

Api = Literal["ollama", "openai"]


def api_of(path: str) -> Api:
    return "openai" if path.startswith("/v1/") else "ollama"


def error_body(api: Api, message: str, kind: str = "api_error", code: str | None = None) -> dict[str, Any]:
    if api == "openai":
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return {"error": message}


def error_response(path: str, exc: EmberError, headers: dict[str, str] | None = None) -> Response:
    extra = dict(headers or {})
    if isinstance(exc, Unauthorized):
        extra["WWW-Authenticate"] = "Bearer"
    body = error_body(api_of(path), exc.message, exc.kind, exc.code)
    return JSONResponse(body, status_code=exc.status, headers=extra)


def stream_error_chunk(api: Api, message: str) -> bytes:
    """The last item of a stream that broke after it started, in the stream's own framing."""
    if api == "openai":
        return b"data: " + json.dumps(error_body(api, message, "server_error")).encode() + b"\n\n"
    return json.dumps(error_body(api, message)).encode() + b"\n"


async def _ember_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmberError)
    return error_response(request.url.path, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if path.startswith("/v1/"):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body("openai", str(exc.detail), kind), status_code=exc.status_code)
    if exc.status_code == 404:
        return PlainTextResponse("404 page not found", status_code=404)
    if exc.status_code == 405:
        return PlainTextResponse("405 method not allowed", status_code=405)
    return JSONResponse(error_body("ollama", str(exc.detail)), status_code=exc.status_code)


class UnexpectedErrors:
    """A bug becomes a generic 500 naming a request id; the traceback goes to the log under that id, once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            incident = uuid.uuid4().hex[:16]
            log.error("internal error on %s %s [request id %s]", scope.get("method"), scope.get("path"), incident,
                      exc_info=exc)
            if not started:
                error = EmberError(f"internal server error (request id {incident})")
                await error_response(scope.get("path", ""), error)(scope, receive, send)


def install_error_handlers(app: Any) -> None:
    app.add_exception_handler(EmberError, _ember_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(UnexpectedErrors)
