"""The engine's one mapping from errors to HTTP responses, on the bodies of ``ember.edge``.

The streaming code uses the same bodies for an error that happens after the first byte (a final NDJSON line or
SSE event).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from ember.edge import UnexpectedErrors, api_of, error_body, http_error_response
from ember.errors import ClientGone, EmberError

log = logging.getLogger(__name__)


def error_response(request: Request, status: int, message: str, kind: str = "api_error") -> Response:
    return JSONResponse(error_body(api_of(request.url.path), message, kind), status_code=status)


async def _ember_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmberError)
    if isinstance(exc, ClientGone):
        log.info("%s %s: %s", request.method, request.url.path, exc.message)
    elif exc.status >= 500:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc.message)
    return error_response(request, exc.status, exc.message, exc.kind)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return http_error_response(request.url.path, exc)


def _internal_error(path: str, message: str) -> Response:
    return JSONResponse(error_body(api_of(path), message), status_code=500)


async def _client_gone(request: Request, exc: Exception) -> Response:
    """A client that disconnects mid-body (an aborted upload) is a normal event, not an error to trace."""
    log.info("%s %s: the client disconnected before the request was complete", request.method, request.url.path)
    return error_response(request, ClientGone.status, ClientGone().message, ClientGone.kind)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(EmberError, _ember_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(UnexpectedErrors, render=_internal_error)
