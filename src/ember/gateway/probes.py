"""``/healthz`` (the process answers) and ``/readyz`` (the database answers and an engine node is healthy).

Both answer ``{"status": "ok"|"fail", "checks": [{"name", "ok", "detail"}]}`` with 200 or 503, and need no
credentials (Kubernetes probes carry none); they reveal node names and health, nothing about keys or users.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import JSONResponse

from ember.db.database import Database
from ember.gateway.pool import EnginePool

DB_TIMEOUT_S = 3.0


def probe_response(checks: list[dict[str, Any]]) -> JSONResponse:
    ok = all(check["ok"] for check in checks)
    return JSONResponse({"status": "ok" if ok else "fail", "checks": checks}, status_code=200 if ok else 503)


def liveness() -> JSONResponse:
    return probe_response([{"name": "process", "ok": True, "detail": "serving"}])


async def readiness(database: Database, pool: EnginePool) -> JSONResponse:
    return probe_response([await _database_check(database), _engines_check(pool)])


async def _database_check(database: Database) -> dict[str, Any]:
    try:
        with anyio.fail_after(DB_TIMEOUT_S):
            await anyio.to_thread.run_sync(_ping, database, abandon_on_cancel=True)
    except TimeoutError:
        return {"name": "database", "ok": False, "detail": f"no answer within {DB_TIMEOUT_S:g}s"}
    except SQLAlchemyError as exc:
        return {"name": "database", "ok": False, "detail": str(exc).splitlines()[0][:200]}
    return {"name": "database", "ok": True, "detail": database.dialect}


def _ping(database: Database) -> None:
    with database.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _engines_check(pool: EnginePool) -> dict[str, Any]:
    healthy = pool.healthy_nodes()
    if healthy:
        return {"name": "engines", "ok": True,
                "detail": f"{len(healthy)} of {len(pool.nodes)} healthy: {', '.join(n.name for n in healthy)}"}
    return {"name": "engines", "ok": False, "detail": f"no healthy engine node ({pool.describe_failures()})"}
