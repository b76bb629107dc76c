"""Forwarding to an engine node: send with retry before the first byte, then relay the answer as it arrives.

``open_upstream`` tries nodes in the pool's order of preference: a connection that fails (refused, reset,
dropped before the status line) takes the node out for a cool-down and tries the next one; a 503 (queue full)
tries the next one while there is one. Once a status line has come back, the request is committed to that
node. ``RelayResponse`` then passes each chunk on as it arrives; when the client goes away it stops, which
closes the connection to the engine, and the engine cancels the generation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ember.errors import ClientGone, EngineUnavailable
from ember.gateway.pool import EnginePool, Node

# Headers of an engine answer that describe the hop, not the answer; the relay sets its own framing.
_HOP_HEADERS = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"date", b"server",
                          b"proxy-connection", b"upgrade", b"te", b"trailer", b"content-encoding"})


@dataclass(frozen=True)
class Upstream:
    node: Node
    response: httpx.Response
    tried: tuple[str, ...]  # nodes that failed before this one


@dataclass(frozen=True)
class Outgoing:
    """What to send, to whichever node is chosen."""

    method: str
    path: str  # with the query string
    headers: dict[str, str]
    content: bytes
    timeout: httpx.Timeout

    def to(self, client: httpx.AsyncClient, node: Node) -> httpx.Request:
        return client.build_request(self.method, node.url + self.path, headers=self.headers, content=self.content,
                                    timeout=self.timeout)


async def open_upstream(pool: EnginePool, outgoing: Outgoing, *, model: str | None,
                        pinned: Node | None = None) -> Upstream:
    """Send ``outgoing`` to the best node (or ``pinned``); retry elsewhere before the first byte."""
    tried: list[Node] = []
    failures: list[str] = []
    while True:
        try:
            node = pinned if pinned is not None else pool.choose(model, exclude=tried)
        except EngineUnavailable:
            break
        if node in tried:
            break
        tried.append(node)
        pool.started(node, model)
        try:
            response = await pool.client.send(outgoing.to(pool.client, node), stream=True)
        except httpx.TransportError as exc:
            pool.ended(node, model)
            reason = str(exc) or type(exc).__name__
            pool.mark_failed(node, reason)
            failures.append(f"{node.name}: {reason}")
            continue
        if response.status_code == 401:  # the engine refused our EMBER_ENGINE_KEY: a setup fault, not the client's
            await response.aclose()
            pool.ended(node, model)
            pool.mark_failed(node, "refused the gateway's EMBER_ENGINE_KEY (do the keys differ?)")
            failures.append(f"{node.name}: refused the gateway's EMBER_ENGINE_KEY")
            continue
        if response.status_code == 503 and pinned is None and _another(pool, model, tried):
            await response.aclose()
            pool.ended(node, model)
            failures.append(f"{node.name}: busy (503)")
            continue
        return Upstream(node, response, tuple(failures))
    detail = "; ".join(failures) or pool.describe_failures()
    raise EngineUnavailable(f"no engine node could take the request ({detail})")


def _another(pool: EnginePool, model: str | None, tried: list[Node]) -> bool:
    try:
        pool.choose(model, exclude=tried)
    except EngineUnavailable:
        return False
    return True


def relay_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(name.lower(), value) for name, value in response.headers.raw if name.lower() not in _HOP_HEADERS]


async def until_disconnect(request: Request) -> None:
    """Return once the client has gone (the body was read already, so this waits for that alone)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(request: Request, work: asyncio.Future[Upstream]) -> Upstream:
    """Wait for ``work`` (the engine's status line, which for a non-streamed answer comes with the whole
    answer); if the client disconnects first, cancel it, which drops the engine connection: ClientGone."""
    watcher: asyncio.Future[None] = asyncio.ensure_future(until_disconnect(request))
    try:
        await asyncio.wait([work, watcher], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
    except asyncio.CancelledError:  # the caller gave up (an in-process caller's task was cancelled)
        work.cancel()
        raise
    finally:
        watcher.cancel()
    if work.done():
        return work.result()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work
    raise ClientGone()


class RelayResponse(Response):
    """A response passing ``body`` through chunk by chunk. A client disconnect cancels the body iterator
    (whose ``finally`` closes the engine connection); ``receive`` is watched for it concurrently."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: AsyncIterator[bytes]) -> None:
        self.status_code = status
        self.raw_headers = headers
        self.chunks = body
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                await self._send_all(send)
            finally:
                group.cancel_scope.cancel()

    async def _send_all(self, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away while we wrote; the finally below ends the engine side
        finally:
            with anyio.CancelScope(shield=True):
                aclose = getattr(self.chunks, "aclose", None)
                if aclose is not None:
                    await aclose()
