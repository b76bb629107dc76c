"""The engine's own door: ``EMBER_ENGINE_KEY``, and the refusal to listen off loopback without one.

The web role sends the shared key as ``Authorization: Bearer <key>`` (``x-api-key`` is accepted too); the
engine compares in constant time. Kubernetes probes carry no credentials, so ``/healthz`` and ``/readyz`` are
exempt. An engine bound to a non-loopback address without a key would be one more open Ollama on the
internet: ``check_exposure`` refuses that unless ``EMBER_ALLOW_OPEN_ENGINE=true``, which is logged loudly.
"""

from __future__ import annotations

import hmac
import json
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from ember.config import Settings, is_loopback
from ember.edge import ollama_error_body, openai_error_body
from ember.errors import UnsafeExposure
from ember.probes import PROBE_PATHS

log = logging.getLogger(__name__)

OPEN_WARNING = ("!! the engine is listening on %s without EMBER_ENGINE_KEY (EMBER_ALLOW_OPEN_ENGINE=true): "
                "anyone who can reach this address can use it")


def check_exposure(settings: Settings) -> bool:
    """Whether the engine runs open off loopback (allowed, to be warned about); UnsafeExposure if not allowed."""
    if settings.engine_key or is_loopback(settings.bind_host):
        return False
    if not settings.allow_open_engine:
        raise UnsafeExposure(
            f"refusing to serve the engine on {settings.bind_host}, which is not loopback, without "
            "EMBER_ENGINE_KEY; set a key (the web role sends it), bind to 127.0.0.1, or set "
            "EMBER_ALLOW_OPEN_ENGINE=true to run it open anyway")
    log.warning(OPEN_WARNING, settings.bind_host)
    return True


def presented_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The credential in ``Authorization: Bearer`` or ``x-api-key``, as raw bytes (no decoding to fail)."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer":
                return token.strip()
        elif name == b"x-api-key":
            return value.strip()
    return None


class EngineKeyRequired:
    """Answer 401 to any request but the probes that does not carry the engine key."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in PROBE_PATHS:
            given = presented_key(scope["headers"])
            if given is None or not hmac.compare_digest(given, self.key):
                await _unauthorized(scope["path"], send)
                return
        await self.app(scope, receive, send)


class OpenEngineWarning:
    """Repeat the open-engine warning whenever a client asks /api/version (what probes and clients poll)."""

    def __init__(self, app: ASGIApp, bind_host: str) -> None:
        self.app = app
        self.bind_host = bind_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/version":
            log.warning(OPEN_WARNING, self.bind_host)
        await self.app(scope, receive, send)


async def _unauthorized(path: str, send: Send) -> None:
    message = "this engine requires EMBER_ENGINE_KEY (send it as Authorization: Bearer)"
    error = openai_error_body(message, "invalid_request_error", code="invalid_api_key") \
        if path.startswith("/v1/") else ollama_error_body(message)
    body = json.dumps(error).encode()
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"www-authenticate", b"Bearer")]})
    await send({"type": "http.response.body", "body": body})
