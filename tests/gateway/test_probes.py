"""The web role's /healthz and /readyz: no credentials needed, 200 or 503 with the checks named."""

from __future__ import annotations

import httpx

from ember.db import Database
from tests.gateway.harness import RunningWeb


def test_live_and_ready(web: RunningWeb) -> None:
    live = httpx.get(web.url + "/healthz")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    ready = httpx.get(web.url + "/readyz")
    assert ready.status_code == 200
    checks = {c["name"]: c for c in ready.json()["checks"]}
    assert checks["database"]["ok"] and checks["database"]["detail"] == "sqlite"
    assert checks["engines"]["ok"] and web.gateway.pool.nodes[0].name in checks["engines"]["detail"]


def test_not_ready_without_an_engine(web_without_engines: RunningWeb, fresh_db: Database) -> None:
    assert httpx.get(web_without_engines.url + "/healthz").status_code == 200
    ready = httpx.get(web_without_engines.url + "/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "fail"
    engines = next(c for c in ready.json()["checks"] if c["name"] == "engines")
    assert not engines["ok"] and "no healthy engine" in engines["detail"]
