"""`ember health`: the runbook's health check, built in. Three checks in order, each stopping the run on failure:

1. the API answers (``GET /api/version``)            fail: exit 1
2. the model is available (``POST /api/show``)        fail: exit 2
3. a short generation succeeds (``/api/generate``)    fail: exit 3; slower than ``max_seconds``: exit 4

The same requests work against the engine and the web role (with an API key), so one command serves as a
container HEALTHCHECK, a systemd watchdog script and a smoke test after an upgrade.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from ember.client import Client, ClientError

PROMPT = "Reply with one word: ready."
NUM_PREDICT = 8


class Exit(IntEnum):
    HEALTHY = 0
    UNREACHABLE = 1
    NO_MODEL = 2
    INFERENCE_FAILED = 3
    SLOW = 4


_SUMMARY = {
    Exit.HEALTHY: "healthy",
    Exit.UNREACHABLE: "API unreachable",
    Exit.NO_MODEL: "model not available",
    Exit.INFERENCE_FAILED: "inference failed",
    Exit.SLOW: "performance degraded",
}


@dataclass(frozen=True)
class Step:
    name: str
    verdict: str  # PASS, FAIL or WARN
    detail: str


@dataclass
class HealthReport:
    url: str
    model: str
    max_seconds: float
    steps: list[Step] = field(default_factory=list)
    exit: Exit = Exit.HEALTHY
    generation_seconds: float | None = None

    @property
    def summary(self) -> str:
        timing = f"; generation took {self.generation_seconds:.2f}s" if self.generation_seconds is not None else ""
        return f"{_SUMMARY[self.exit]} (exit {int(self.exit)}): {self.model} at {self.url}{timing}"

    def add(self, name: str, verdict: str, detail: str, exit: Exit = Exit.HEALTHY) -> None:
        self.steps.append(Step(name, verdict, detail))
        self.exit = max(self.exit, exit)

    def to_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.exit == Exit.HEALTHY else "fail", "exit_code": int(self.exit),
                "summary": self.summary, "url": self.url, "model": self.model, "max_seconds": self.max_seconds,
                "generation_seconds": self.generation_seconds,
                "checks": [{"name": s.name, "result": s.verdict, "detail": s.detail} for s in self.steps]}


def check_health(client: Client, model: str, *, max_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> HealthReport:
    report = HealthReport(url=client.base_url, model=model, max_seconds=max_seconds)
    if _check_api(client, report, clock) and _check_model(client, model, report):
        _check_generation(client, model, report, clock)
    return report


def _check_api(client: Client, report: HealthReport, clock: Callable[[], float]) -> bool:
    started = clock()
    try:
        version = client.request("GET", "/api/version") or {}
    except ClientError as exc:
        report.add("api", "FAIL", _why(exc), Exit.UNREACHABLE)
        return False
    report.add("api", "PASS", f"answered in {(clock() - started) * 1000:.0f} ms "
                              f"(version {version.get('version', 'unknown')})")
    return True


def _check_model(client: Client, model: str, report: HealthReport) -> bool:
    try:
        info = client.request("POST", "/api/show", {"model": model}) or {}
    except ClientError as exc:
        if exc.unreachable or exc.timed_out:
            report.add("model", "FAIL", _why(exc), Exit.UNREACHABLE)
        else:
            report.add("model", "FAIL", f"{model}: {_why(exc)}", Exit.NO_MODEL)
        return False
    details = info.get("details", {}) if isinstance(info, dict) else {}
    size = " ".join(str(details.get(k)) for k in ("parameter_size", "quantization_level") if details.get(k))
    report.add("model", "PASS", f"{model} is available" + (f" ({size})" if size else ""))
    return True


def _check_generation(client: Client, model: str, report: HealthReport, clock: Callable[[], float]) -> None:
    body = {"model": model, "prompt": PROMPT, "stream": False,
            "options": {"num_predict": NUM_PREDICT, "temperature": 0, "seed": 1}}
    started = clock()
    try:
        answer = client.request("POST", "/api/generate", body) or {}
    except ClientError as exc:
        exit = Exit.UNREACHABLE if exc.unreachable else Exit.INFERENCE_FAILED
        report.add("generation", "FAIL", _why(exc), exit)
        return
    seconds = report.generation_seconds = clock() - started
    tokens = answer.get("eval_count", 0) if isinstance(answer, dict) else 0
    if not isinstance(answer, dict) or answer.get("done") is not True or not tokens:
        report.add("generation", "FAIL", "the server answered without generating any tokens", Exit.INFERENCE_FAILED)
        return
    load = answer.get("load_duration", 0) / 1e9
    detail = f"{tokens} tokens in {seconds:.2f}s" + (f" (model load {load:.2f}s)" if load >= 0.01 else "")
    if seconds > max(report.max_seconds, 0):
        report.add("generation", "WARN", f"{detail}: slower than --max-seconds {report.max_seconds:g}", Exit.SLOW)
    else:
        report.add("generation", "PASS", detail)


def _why(exc: ClientError) -> str:
    return f"HTTP {exc.status}: {exc}" if exc.status else str(exc)
