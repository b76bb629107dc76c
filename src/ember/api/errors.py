"""The one place typed errors become HTTP responses.

``/v1/*`` paths get OpenAI's envelope; everything else gets Ollama's ``{"error": "..."}``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ember.errors import EmberError

log = logging.getLogger(__name__)


def error_response(request: Request, status: int, message: str, kind: str = "api_error") -> Response:
    if request.url.path.startswith("/v1/"):
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        return JSONResponse(body, status_code=status)
    return JSONResponse({"error": message}, status_code=status)


async def _ember_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmberError)
    if exc.status >= 500:
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
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, 500, f"internal error: {exc}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(EmberError, _ember_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
