"""Model management over several nodes: ``/api/pull``, ``/api/create``, ``/api/copy`` and ``/api/delete`` go to
every healthy node, or to the one named by ``"node"`` in the body (or ``?node=``), which is not forwarded.

Streamed progress (pull, create) comes node after node, each line with ``"node"`` added; a node that fails
adds a ``status`` line saying so, and the stream ends with an ``error`` line naming the failed nodes, else
with the last node's ``success``. Without streaming (and for copy, delete) the nodes work at once and the
answer is the first node's, or an error listing each node's; a model missing on some nodes (404) is not a
failure as long as one node succeeded (a model another node never had is not an error to delete).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any

import anyio.to_thread
import httpx
from starlette.responses import JSONResponse, Response

from ember.edge import error_body
from ember.errors import BadRequest, EngineUnavailable, RequestTimeout
from ember.gateway.pipeline import Call, Pipeline, exchange_headers
from ember.gateway.pool import Node
from ember.gateway.proxy import Outgoing, RelayResponse

NODE_FIELD = "node"


def targets(pipeline: Pipeline, call: Call) -> list[Node]:
    """The node the call names, else every healthy node."""
    named = (call.body or {}).get(NODE_FIELD) or call.request.query_params.get(NODE_FIELD)
    if named is not None:
        if not isinstance(named, str):
            raise BadRequest("node must be a string (host:port or base URL of an engine)")
        node = pipeline.pool.find(named)
        if node is None:
            known = ", ".join(n.name for n in pipeline.pool.nodes)
            raise BadRequest(f"unknown node {named!r}: the engine nodes are {known}")
        return [node]
    nodes = pipeline.pool.healthy_nodes()
    if not nodes:
        raise EngineUnavailable(f"no engine node is available ({pipeline.pool.describe_failures()})")
    return nodes


def without_node(call: Call) -> bytes:
    if call.body is None or NODE_FIELD not in call.body:
        return call.raw
    return json.dumps({k: v for k, v in call.body.items() if k != NODE_FIELD}).encode()


async def fan_out(pipeline: Pipeline, call: Call, *, streams: bool) -> Response:
    nodes = targets(pipeline, call)
    call.raw = without_node(call)
    call.exchange.node = ",".join(n.name for n in nodes)
    if len(nodes) == 1:
        return await pipeline.forward(call, pinned=nodes[0])
    outgoing = pipeline.outgoing(call)
    if streams and (call.body or {}).get("stream", True) is not False:
        headers = [(b"content-type", b"application/x-ndjson"), *exchange_headers(call.exchange)]
        return RelayResponse(200, headers, _progress(pipeline, call, outgoing, nodes))
    answers = await asyncio.gather(*(_answer(pipeline, outgoing, node) for node in nodes))
    return _combined(nodes, answers)


async def _answer(pipeline: Pipeline, outgoing: Outgoing, node: Node) -> tuple[int, bytes, httpx.Headers]:
    try:
        response = await pipeline.pool.client.send(outgoing.to(pipeline.pool.client, node))
    except httpx.TransportError as exc:
        pipeline.pool.mark_failed(node, str(exc) or type(exc).__name__)
        return 502, json.dumps({"error": f"cannot reach the node: {exc}"}).encode(), httpx.Headers()
    return response.status_code, response.content, response.headers


def _combined(nodes: list[Node], answers: list[tuple[int, bytes, httpx.Headers]]) -> Response:
    good = [(status, body, headers) for status, body, headers in answers if status < 300]
    failed = [(node, status, body) for node, (status, body, _) in zip(nodes, answers, strict=True)
              if status >= 300 and not (good and status == 404)]
    if good and not failed:
        status, body, headers = good[0]
        kept = {k: v for k, v in headers.items() if k.lower() == "content-type"}
        return Response(body, status_code=status, headers=kept)
    status = failed[0][1] if len({s for _, s, _ in failed}) == 1 else 502
    detail = "; ".join(f"{node.name}: {_message(body)}" for node, _, body in failed)
    return JSONResponse(error_body("ollama", f"failed on {len(failed)} of {len(nodes)} nodes: {detail}"),
                        status_code=status)


def _message(body: bytes) -> str:
    try:
        parsed = json.loads(body)
        return str(parsed.get("error", parsed)) if isinstance(parsed, dict) else body.decode()[:200]
    except ValueError:
        return body.decode("utf-8", "replace")[:200] or "no answer"


async def _progress(pipeline: Pipeline, call: Call, outgoing: Outgoing, nodes: list[Node]) -> AsyncIterator[bytes]:
    failures: list[str] = []
    try:
        for node in nodes:
            async for line in _node_progress(pipeline, outgoing, node, failures):
                yield line
        if failures:
            call.exchange.status, call.exchange.error = 502, "; ".join(failures)
            yield _line(error_body("ollama", f"failed on {len(failures)} of {len(nodes)} nodes: "
                                             + "; ".join(failures)))
        else:
            call.exchange.status = 200
    finally:
        await pipeline.finish(call.exchange)


async def _node_progress(pipeline: Pipeline, outgoing: Outgoing, node: Node,
                         failures: list[str]) -> AsyncIterator[bytes]:
    try:
        async with pipeline.pool.client.stream(outgoing.method, node.url + outgoing.path, headers=outgoing.headers,
                                               content=outgoing.content, timeout=outgoing.timeout) as response:
            async for raw in response.aiter_lines():
                item = _parse(raw)
                if item is None:
                    continue
                if "error" in item or response.status_code >= 300:
                    failures.append(f"{node.name}: {item.get('error', item)}")
                    yield _line({"status": f"failed on {node.name}: {item.get('error', item)}", "node": node.name})
                    return
                yield _line({**item, "node": node.name})
    except httpx.HTTPError as exc:
        failures.append(f"{node.name}: {exc or type(exc).__name__}")
        pipeline.pool.mark_failed(node, str(exc) or type(exc).__name__)
        yield _line({"status": f"failed on {node.name}: {exc or type(exc).__name__}", "node": node.name})


def _parse(raw: str) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return {"error": raw[:200]}
    return value if isinstance(value, dict) else {"error": str(value)[:200]}


def _line(item: dict[str, Any]) -> bytes:
    return json.dumps(item, ensure_ascii=False).encode() + b"\n"



# --- blobs: uploaded once to the gateway, then to each target node ------------------------------------------

UPLOAD_CHUNK = 1024 * 1024
SPOOL_IN_MEMORY = 8 * 1024 * 1024


async def blob_exists(pipeline: Pipeline, call: Call) -> Response:
    """200 when every target node has the blob (so a following create works on all of them), else 404."""
    nodes = targets(pipeline, call)
    outgoing = pipeline.outgoing(call)
    answers = await asyncio.gather(*(_answer(pipeline, outgoing, node) for node in nodes))
    status = 200 if all(status == 200 for status, _, _ in answers) else 404
    return Response(status_code=status)


async def upload_blob(pipeline: Pipeline, call: Call) -> Response:
    """Spool the upload (to disk past 8 MB), then send it to each target node in turn."""
    nodes = targets(pipeline, call)
    call.exchange.node = ",".join(n.name for n in nodes)
    idle = pipeline.settings.body_timeout
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        stream = call.request.stream()
        while True:
            try:
                async with asyncio.timeout(idle):
                    chunk = await anext(stream)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise RequestTimeout(f"no upload data for {idle:g}s (EMBER_BODY_TIMEOUT)") from None
            await anyio.to_thread.run_sync(spool.write, chunk)
        answers = [await _upload_to(pipeline, call, node, spool) for node in nodes]
    return _combined(nodes, answers)


async def _upload_to(pipeline: Pipeline, call: Call, node: Node, spool: IO[bytes]) -> tuple[int, bytes, httpx.Headers]:
    spool.seek(0)
    outgoing = pipeline.outgoing(call)
    headers = {**outgoing.headers, "content-type": "application/octet-stream"}
    try:
        response = await pipeline.pool.client.post(node.url + outgoing.path, headers=headers,
                                                   content=_chunks(spool), timeout=outgoing.timeout)
    except httpx.TransportError as exc:
        pipeline.pool.mark_failed(node, str(exc) or type(exc).__name__)
        return 502, json.dumps({"error": f"cannot reach the node: {exc}"}).encode(), httpx.Headers()
    return response.status_code, response.content, response.headers


async def _chunks(spool: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await anyio.to_thread.run_sync(spool.read, UPLOAD_CHUNK):
        yield chunk
