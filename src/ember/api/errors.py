"""The one place errors become HTTP bodies and responses.

``/v1/*`` paths get OpenAI's envelope; everything else gets Ollama's ``{"error": "..."}``. The streaming
code uses the same bodies for an error that happens after the first byte (a final NDJSON line or SSE event).

An unexpected exception never reaches a client as its text: the client gets a generic message with a
request id, and the log gets the traceback under the same id.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ember.errors import ClientGone, EmberError

log = logging.getLogger(__name__)


def ollama_error_body(message: str) -> dict[str, Any]:
    return {"error": message}


def openai_error_body(message: str, kind: str = "api_error", param: str | None = None,
                      code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def unexpected_error_message(exc: BaseException, where: str) -> str:
    """Log ``exc`` with its traceback under a new request id; return what the client may see."""
    request_id = uuid.uuid4().hex[:16]
    log.error("internal error on %s [request id %s]", where, request_id, exc_info=exc)
    return f"internal server error (request id {request_id})"


def error_response(request: Request, status: int, message: str, kind: str = "api_error") -> Response:
    if request.url.path.startswith("/v1/"):
        return JSONResponse(openai_error_body(message, kind), status_code=status)
    return JSONResponse(ollama_error_body(message), status_code=status)


async def _ember_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmberError)
    if isinstance(exc, ClientGone):
        log.info("%s %s: %s", request.method, request.url.path, exc.message)
    elif exc.status >= 500:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc.message)
    return error_response(request, exc.status, exc.message, exc.kind)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/v1/"):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(request, exc.status_code, str(exc.detail), kind)
    if exc.status_code == 404:
        return PlainTextResponse("404 page not found", status_code=404)
    if exc.status_code == 405:
        return PlainTextResponse("405 method not allowed", status_code=405)
    return JSONResponse(ollama_error_body(str(exc.detail)), status_code=exc.status_code)


class UnexpectedErrors:
    """Answer an unexpected exception with a generic 500 (logged once, with its request id).

    A middleware rather than an ``Exception`` handler: Starlette re-raises after calling such a handler,
    so the server would log the traceback a second time, without the id."""

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
            request = Request(scope)
            message = unexpected_error_message(exc, f"{request.method} {request.url.path}")
            if started:
                return  # the status went out already; the stream ended short, which clients see
            await error_response(request, 500, message)(scope, receive, send)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that disconnects mid-body (an aborted upload) is a normal event, not an error to trace."""
    log.info("%s %s: the client disconnected before the request was complete", request.method, request.url.path)
    return error_response(request, ClientGone.status, ClientGone().message, ClientGone.kind)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(EmberError, _ember_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(UnexpectedErrors)
