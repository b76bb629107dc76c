"""The web role's one mapping from errors to HTTP: each API gets its own error shape.

``/v1/...`` answers in OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``, everything else in
Ollama's ``{"error": "..."}``. A 401 carries ``WWW-Authenticate: Bearer``. Errors after a stream has started
become the stream's last item (an NDJSON line or an SSE event) in the same shapes.

The bodies and the handling of unexpected exceptions are shared with the engine through ``ember.edge``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ember.edge import Api, UnexpectedErrors, api_of, error_body, http_error_response
from ember.errors import EmberError, Unauthorized

log = logging.getLogger(__name__)


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
    return http_error_response(request.url.path, exc)


def _internal_error(path: str, message: str) -> Response:
    return error_response(path, EmberError(message))


def install_error_handlers(app: Any) -> None:
    app.add_exception_handler(EmberError, _ember_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_middleware(UnexpectedErrors, render=_internal_error)
