"""Property-based fuzzing of every POST route of both APIs against the real engine and model (issue 14).

Bodies come from the route shapes in ``tests/fuzz/routes.py``. For every body: no 5xx, an answer within
``ANSWER_BOUND_S``, no "internal server error" inside a 200 stream, and afterwards the server still answers
``/api/version`` and ``/api/ps`` shows no active or queued request. The one 5xx allowed is a 502 from pull or
push naming the unreachable registry: the fuzzer points every registry name at a closed loopback port, and
"the registry cannot be reached" is a bad gateway by definition (Ollama answers the same way).

The counts (routes, inputs, statuses, 5xx, slowest answer) go to ``fuzz-routes.json`` in pytest's temporary
directory (or ``$EMBER_FUZZ_REPORT``) and to one summary line at the end of the module.
``EMBER_FUZZ_EXAMPLES`` overrides the examples per route of the default run.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.routes import BUNDLED, SCRATCH_PREFIX, Route, body_for, routes
from tests.fuzz.values import IN_CI
from tests.server_harness import RunningServer, free_port

ANSWER_BOUND_S = 30.0
IDLE_BOUND_S = 5.0
QUICK_EXAMPLES = int(os.environ.get("EMBER_FUZZ_EXAMPLES", "40"))
SLOW_EXAMPLES = 400

ROUTES = routes(closed_port=free_port())
HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
          HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much]


@dataclass
class Tally:
    inputs: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    unexpected_5xx: list[dict[str, Any]] = field(default_factory=list)
    registry_502: int = 0
    slowest_s: float = 0.0
    slowest_route: str = ""

    def record(self, route: Route, status: int, elapsed: float) -> None:
        self.inputs[route.path] += 1
        self.statuses.setdefault(route.path, Counter())[status] += 1
        if elapsed > self.slowest_s:
            self.slowest_s, self.slowest_route = elapsed, route.path

    def summary(self) -> dict[str, Any]:
        return {"routes_covered": len(self.inputs), "inputs_generated": sum(self.inputs.values()),
                "5xx_seen": len(self.unexpected_5xx), "registry_502_unreachable": self.registry_502,
                "slowest_answer_s": round(self.slowest_s, 3), "slowest_route": self.slowest_route,
                "inputs_per_route": dict(self.inputs),
                "statuses": {path: {str(k): v for k, v in sorted(c.items())} for path, c in self.statuses.items()},
                "unexpected_5xx": self.unexpected_5xx[:20]}


TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def fuzz_report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    if not TALLY.inputs:
        return
    summary = TALLY.summary()
    target = Path(os.environ.get("EMBER_FUZZ_REPORT") or tmp_path_factory.getbasetemp() / "fuzz-routes.json")
    target.write_text(json.dumps(summary, indent=2) + "\n")
    line = (f"route fuzzer: {summary['routes_covered']} routes, {summary['inputs_generated']} inputs, "
            f"{summary['5xx_seen']} 5xx ({summary['registry_502_unreachable']} registry 502s allowed), slowest "
            f"{summary['slowest_answer_s']} s on {summary['slowest_route']}; report {target}")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


@pytest.fixture(scope="module")
def fuzz_client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client(timeout=ANSWER_BOUND_S) as client:
        yield client
        _remove_scratch_models(client)
        assert client.post("/api/show", json={"model": BUNDLED}).status_code == 200, "the bundled model survived"


def _remove_scratch_models(client: httpx.Client) -> None:
    for row in client.get("/api/tags").json()["models"]:
        if row["name"].startswith(SCRATCH_PREFIX):
            client.request("DELETE", "/api/delete", json={"model": row["name"]})


def post(client: httpx.Client, route: Route, body: bytes) -> tuple[int, str, float]:
    """Send the body and read the whole answer (streamed or not); status, text and seconds taken."""
    started = time.monotonic()
    try:
        with client.stream(route.method, route.path, content=body,
                           headers={"content-type": "application/json"}) as response:
            text = response.read().decode("utf-8", "replace")
    except httpx.TimeoutException:
        pytest.fail(f"{route.path}: no answer within {ANSWER_BOUND_S} s for body {body[:300]!r}")
    return response.status_code, text, time.monotonic() - started


def wait_idle(client: httpx.Client) -> list[dict[str, Any]]:
    """Rows of /api/ps still busy after IDLE_BOUND_S (empty when the server went idle)."""
    deadline = time.monotonic() + IDLE_BOUND_S
    while True:
        response = client.get("/api/ps")
        assert response.status_code == 200, f"/api/ps answered {response.status_code}: {response.text[:300]}"
        rows = response.json()["models"]
        busy = [r for r in rows if r["active"] or r["queued"]]
        if not busy or time.monotonic() > deadline:
            return busy
        time.sleep(0.05)


def is_registry_unreachable(route: Route, status: int, text: str) -> bool:
    return status == 502 and route.path in ("/api/pull", "/api/push") and "cannot connect to the registry" in text


def check(client: httpx.Client, route: Route, body: bytes) -> None:
    status, text, elapsed = post(client, route, body)
    TALLY.record(route, status, elapsed)
    shown = body[:300]
    if is_registry_unreachable(route, status, text):
        TALLY.registry_502 += 1
    elif status >= 500:
        TALLY.unexpected_5xx.append({"route": route.path, "status": status, "body": shown.decode("utf-8", "replace"),
                                     "answer": text[:300]})
        pytest.fail(f"{route.path} answered {status}: {text[:500]!r} for body {shown!r}")
    assert elapsed < ANSWER_BOUND_S, f"{route.path} took {elapsed:.1f} s for body {shown!r}"
    assert "internal server error" not in text, f"{route.path}: {text[:500]!r} for body {shown!r}"
    assert client.get("/api/version").status_code == 200, "the server stopped answering"
    busy = wait_idle(client)
    assert not busy, f"still busy {IDLE_BOUND_S} s after {route.path} with {shown!r}: {busy}"


def _ids(route: Route) -> str:
    return route.path.strip("/").replace("/", "-")


@pytest.mark.parametrize("route", ROUTES, ids=_ids)
@settings(max_examples=QUICK_EXAMPLES, deadline=None, suppress_health_check=HEALTH, derandomize=IN_CI)
@given(data=st.data())
def test_generated_bodies_never_5xx_hang_or_leave_work(fuzz_client: httpx.Client, route: Route,
                                                       data: st.DataObject) -> None:
    check(fuzz_client, route, data.draw(body_for(route), label="body"))


@pytest.mark.slow
@pytest.mark.parametrize("route", ROUTES, ids=_ids)
@settings(max_examples=SLOW_EXAMPLES, deadline=None, suppress_health_check=HEALTH, derandomize=IN_CI)
@given(data=st.data())
def test_many_generated_bodies_never_5xx_hang_or_leave_work(fuzz_client: httpx.Client, route: Route,
                                                            data: st.DataObject) -> None:
    check(fuzz_client, route, data.draw(body_for(route), label="body"))
