"""Listings merged over every healthy engine node: ``/api/tags``, ``/api/ps`` and ``/v1/models``.

``/api/ps`` has one row per loaded model per node, with ``node``. ``/api/tags`` and ``/v1/models`` have one row
per model (the same name and digest on several nodes is one model) with ``nodes``, the nodes that hold it.
A node that does not answer is left out of the listing and taken out of rotation for its cool-down. Rows
for models outside the caller's allow-list are left out too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx

from ember.errors import EngineUnavailable
from ember.gateway.pool import EnginePool, Node

log = logging.getLogger(__name__)

LIST_TIMEOUT_S = 10.0
Allowed = Callable[[str], bool]


async def gather_from_nodes(pool: EnginePool, path: str, field: str) -> list[tuple[Node, list[dict[str, Any]]]]:
    """``field`` of ``path``'s answer from each healthy node; EngineUnavailable if none answers."""
    nodes = pool.healthy_nodes() or [pool.choose(None)]
    answers = await asyncio.gather(*(_rows(pool, node, path, field) for node in nodes))
    found = [(node, rows) for node, rows in zip(nodes, answers, strict=True) if rows is not None]
    if not found:
        raise EngineUnavailable(f"no engine node answered {path} ({pool.describe_failures()})")
    return found


async def _rows(pool: EnginePool, node: Node, path: str, field: str) -> list[dict[str, Any]] | None:
    try:
        response = await pool.client.get(node.url + path, headers=pool.headers, timeout=LIST_TIMEOUT_S)
        response.raise_for_status()
        rows = response.json()[field]
        if not isinstance(rows, list):
            raise ValueError(f"{field} is not a list")
        return [row for row in rows if isinstance(row, dict)]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        pool.mark_failed(node, f"{path}: {exc or type(exc).__name__}")
        return None


async def merged_tags(pool: EnginePool, allowed: Allowed) -> dict[str, Any]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for node, rows in await gather_from_nodes(pool, "/api/tags", "models"):
        for row in rows:
            name = str(row.get("name", ""))
            if not allowed(name):
                continue
            entry = merged.setdefault((name, str(row.get("digest", ""))), {**row, "nodes": []})
            entry["nodes"].append(node.name)
    return {"models": sorted(merged.values(), key=lambda r: str(r.get("name", "")))}


async def merged_ps(pool: EnginePool, allowed: Allowed) -> dict[str, Any]:
    models = [{**row, "node": node.name}
              for node, rows in await gather_from_nodes(pool, "/api/ps", "models")
              for row in rows if allowed(str(row.get("name", "")))]
    return {"models": models}


async def merged_models(pool: EnginePool, allowed: Allowed) -> dict[str, Any]:
    merged: dict[str, dict[str, Any]] = {}
    for node, rows in await gather_from_nodes(pool, "/v1/models", "data"):
        for row in rows:
            model_id = str(row.get("id", ""))
            if allowed(model_id):
                merged.setdefault(model_id, {**row, "nodes": []})["nodes"].append(node.name)
    return {"object": "list", "data": sorted(merged.values(), key=lambda r: str(r.get("id", "")))}
