"""``/healthz`` (the process answers) and ``/readyz`` (the database answers and an engine node is healthy).

Both answer ``{"status": "ok"|"fail", "checks": [{"name", "ok", "detail"}]}`` with 200 or 503, and need no
credentials (Kubernetes probes carry none); they reveal node names and health, nothing about keys or users.
"""

from __future__ import annotations

import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import JSONResponse

from ember.db.database import Database
from ember.gateway.pool import EnginePool
from ember.probes import Check, Readiness

DB_TIMEOUT_S = 3.0


def probe_response(*checks: Check) -> JSONResponse:
    readiness = Readiness(checks)
    return JSONResponse(readiness.to_json(), status_code=readiness.status_code)


def liveness() -> JSONResponse:
    return probe_response(Check("process", True, "serving"))


async def readiness(database: Database, pool: EnginePool) -> JSONResponse:
    return probe_response(await _database_check(database), _engines_check(pool))


async def _database_check(database: Database) -> Check:
    try:
        with anyio.fail_after(DB_TIMEOUT_S):
            await anyio.to_thread.run_sync(_ping, database, abandon_on_cancel=True)
    except TimeoutError:
        return Check("database", False, f"no answer within {DB_TIMEOUT_S:g}s")
    except SQLAlchemyError as exc:
        return Check("database", False, str(exc).splitlines()[0][:200])
    return Check("database", True, database.dialect)


def _ping(database: Database) -> None:
    with database.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _engines_check(pool: EnginePool) -> Check:
    healthy = pool.healthy_nodes()
    if healthy:
        return Check("engines", True, f"{len(healthy)} of {len(pool.nodes)} healthy: "
                                      f"{', '.join(n.name for n in healthy)}")
    return Check("engines", False, f"no healthy engine node ({pool.describe_failures()})")
