"""The one request pipeline of the web role. Every ``/api`` and ``/v1`` request goes through ``handle``:

    authenticate -> read body, find the model -> authorize (scope, model allow-list)
    -> admit (limits) -> apply the model policy -> forward (node choice, retry) -> relay the answer
    -> finish: charge tokens, record metrics, write the audit row

Refused and failed requests leave the pipeline early but are finished the same way, so each request has
exactly one audit row. A relayed answer is finished when its last byte has passed (or the client left).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import Response

from ember.config import Settings
from ember.edge import read_body
from ember.errors import EmberError, UpstreamFailed
from ember.gateway.accounting import UsageTracker
from ember.gateway.audit import AuditWriter
from ember.gateway.auth import Authenticator, Principal, authorize
from ember.gateway.bodies import model_of, parse_object, wants_stream
from ember.gateway.errors import error_response, stream_error_chunk
from ember.gateway.exchange import Exchange
from ember.gateway.guards import Guards
from ember.gateway.policy import OVERRIDE_HEADER
from ember.gateway.pool import EnginePool, Node
from ember.gateway.proxy import Outgoing, RelayResponse, Upstream, open_upstream, relay_headers, unless_client_leaves
from ember.gateway.routes_table import Route

log = logging.getLogger(__name__)

NODE_HEADER = b"x-ember-node"  # which engine node answered: for operators, and for the routing tests
RETRIED_HEADER = b"x-ember-retried"  # nodes that failed before the answering one, with why
FINISH_TIMEOUT_S = 5.0


@dataclass
class Call:
    """What the prelude of the pipeline established, handed to the route's action."""

    request: Request
    route: Route
    exchange: Exchange
    principal: Principal
    raw: bytes
    body: dict[str, Any] | None

    @property
    def streams(self) -> bool:
        """Whether the client asked for a streamed answer (only then is a time to first token meaningful)."""
        return self.body is not None and wants_stream(self.body, default=self.route.stream_default)


Action = Callable[[Call], Awaitable[Response]]


class Pipeline:
    def __init__(self, settings: Settings, auth: Authenticator, pool: EnginePool, audit: AuditWriter,
                 guards: Guards) -> None:
        self.settings = settings
        self.auth = auth
        self.pool = pool
        self.audit = audit
        self.guards = guards
        self.timeout = httpx.Timeout(connect=5.0, read=settings.request_timeout + 30.0, write=60.0, pool=10.0)

    async def handle(self, request: Request, route: Route, action: Action, *,
                     model: str | None = None, principal: Principal | None = None) -> Response:
        """``principal`` is given when the web role calls its own pipeline for a logged-in user (the UI's
        chats); otherwise the request's credentials say who is asking."""
        exchange = Exchange.begin(request, route.path)
        exchange.model = model
        try:
            if principal is None:
                principal = await self.auth.authenticate(request.headers, request.method)
            exchange.principal = principal
            raw, body = await self._read(request, route)
            if body is not None and route.model_keys:
                exchange.model = model_of(body, *route.model_keys)
            authorize(principal, route.scope, exchange.model)
            exchange.admission = await self.guards.admit(principal)  # limits: may raise RateLimited
            exchange.headers.update(exchange.admission.headers)
            raw = self._apply_policy(route, exchange, principal, raw, body)
            if self.settings.audit_bodies:
                exchange.prompt_body = raw.decode("utf-8", "replace")
                exchange.response_chunks = []
            call = Call(request, route, exchange, principal, raw, body)
            response = await action(call)
        except EmberError as exc:
            exchange.fail(exc)
            await self.finish(exchange)
            return error_response(request.url.path, exc, {**exchange.headers, **_extra_headers(exc)})
        except asyncio.CancelledError:  # the caller went away before the answer began: still one audit row
            exchange.status, exchange.error = 499, "the client went away before the answer began"
            with anyio.CancelScope(shield=True):
                await self.finish(exchange)
            raise
        if not isinstance(response, RelayResponse):  # a relay finishes when its last byte has passed
            exchange.status = response.status_code
            response.headers.update(exchange.headers)
            await self.finish(exchange)
        return response

    async def _read(self, request: Request, route: Route) -> tuple[bytes, dict[str, Any] | None]:
        if not route.json_body:
            return b"", None
        raw = await read_body(request, self.settings.max_body_bytes, self.settings.body_timeout)
        return raw, parse_object(raw)

    def _apply_policy(self, route: Route, exchange: Exchange, principal: Principal, raw: bytes,
                      body: dict[str, Any] | None) -> bytes:
        if not route.policy or body is None or exchange.model is None:
            return raw
        result = self.guards.apply_policy(body, api=route.api, model=exchange.model, principal=principal)
        if result.overridden:
            exchange.headers[OVERRIDE_HEADER] = ",".join(result.overridden)
        if result.body is body:
            return raw
        return json.dumps(result.body, ensure_ascii=False, separators=(",", ":")).encode()

    # --- forwarding -----------------------------------------------------------------------------------

    def outgoing(self, call: Call, *, method: str | None = None, path: str | None = None) -> Outgoing:
        request = call.request
        target = path if path is not None else request.url.path
        if path is None and request.url.query:
            target += "?" + request.url.query
        headers = {"content-type": request.headers.get("content-type", "application/json"),
                   "x-request-id": call.exchange.request_id}
        if self.settings.engine_key:
            headers["authorization"] = f"Bearer {self.settings.engine_key}"
        return Outgoing(method or request.method, target, headers, call.raw, self.timeout)

    async def forward(self, call: Call, *, pinned: Node | None = None) -> RelayResponse:
        """Send the call to an engine node and relay its answer as it comes."""
        exchange = call.exchange
        active = self.guards.active(exchange.model or "")  # metrics: requests in flight per model
        active.__enter__()
        try:
            work = asyncio.ensure_future(open_upstream(self.pool, self.outgoing(call), model=exchange.model,
                                                       pinned=pinned))
            upstream = await unless_client_leaves(call.request, work)
        except BaseException:
            active.__exit__(None, None, None)
            raise
        exchange.node, exchange.status = upstream.node.name, upstream.response.status_code
        tracker = UsageTracker(sse=call.route.sse)
        body = self._pass_through(call, upstream, tracker, active)
        headers = relay_headers(upstream.response) + [(NODE_HEADER, upstream.node.name.encode("latin-1"))]
        if upstream.tried:
            headers.append((RETRIED_HEADER, ", ".join(upstream.tried).encode("latin-1", "replace")))
        headers += exchange_headers(exchange)
        return RelayResponse(upstream.response.status_code, headers, body)

    async def _pass_through(self, call: Call, upstream: Upstream, tracker: UsageTracker,
                            active: AbstractContextManager[None]) -> AsyncIterator[bytes]:
        exchange, node = call.exchange, upstream.node
        try:
            async for chunk in _raw(upstream.response):
                tracker.feed(chunk)
                exchange.keep(chunk)
                yield chunk
        except httpx.HTTPError as exc:  # the engine broke off after the answer started: say so, in its framing
            reason = str(exc) or type(exc).__name__
            message = f"engine node {node.name} failed during the answer: {reason}"
            exchange.status, exchange.error = UpstreamFailed.status, message
            self.pool.mark_failed(node, reason)
            yield stream_error_chunk(call.route.api, message)
        except BaseException:  # cancelled: the client disconnected; closing the response stops the engine
            exchange.status, exchange.error = 499, "the client disconnected during the answer"
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await upstream.response.aclose()
                self.pool.ended(node, exchange.model)
                active.__exit__(None, None, None)
                exchange.first_byte_at = tracker.first_byte_at if call.streams else None
                exchange.usage = tracker.usage()
                if exchange.status < 400 and (failure := tracker.stream_error()):
                    exchange.status, exchange.error = UpstreamFailed.status, failure
                if exchange.status >= 400 and exchange.error is None:
                    exchange.error = tracker.error_text()
                await self.finish(exchange)

    # --- finishing ------------------------------------------------------------------------------------

    async def finish(self, exchange: Exchange) -> None:
        """Charge tokens, record metrics and queue the audit row; never raises (the answer is already decided)."""
        usage, admission = exchange.usage, exchange.admission
        if admission is not None:
            try:
                async with asyncio.timeout(FINISH_TIMEOUT_S):
                    await admission.finish(usage.total if usage else 0)
            except Exception:
                log.exception("could not finish the admission of request %s", exchange.request_id)
        try:
            self.guards.request_done(
                route=exchange.route, model=exchange.model or "", status=exchange.status,
                duration_s=exchange.duration_s, ttft_s=exchange.ttft_s,
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0)
        except Exception:
            log.exception("could not record metrics for request %s", exchange.request_id)
        self.audit.submit(exchange.audit_event())


async def _raw(response: httpx.Response) -> AsyncIterator[bytes]:
    """The answer's bytes as they arrive; a response already read (an injected test transport) in one piece."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.StreamConsumed:
        yield response.content


def exchange_headers(exchange: Exchange) -> list[tuple[bytes, bytes]]:
    """The headers every answer to this request carries (request id, rate limits, overrides), for a relay."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exchange.headers.items()]


def _extra_headers(exc: EmberError) -> dict[str, str]:
    """Headers an error brings along (RateLimited: Retry-After and the rate-limit headers)."""
    headers = getattr(exc, "headers", None)
    return dict(headers) if isinstance(headers, dict) else {}
