"""The engine's /metrics: Prometheus text, one registry per app, names prefixed ``ember_``.

Three sources:
- ``RequestMetrics``, an ASGI middleware, counts every HTTP request by route template, model and status and
  times it to its last byte (streams included);
- ``EngineMetrics`` is the engine's observer: tokens, time to first token and queue wait per model, and the
  model a request resolved to, for the middleware's label (a context variable the middleware sets);
- ``SchedulerCollector`` reads the scheduler at scrape time: active and queued requests, loaded models, their
  memory, and runner restarts.

Labels hold only route templates and model names the store resolved, never anything a client can invent
(an unknown model is labelled ""), and no API key: the label sets stay small.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ember.engine.scheduler import Scheduler
from ember.errors import EmberError
from ember.names import ModelName

TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
OTHER_ROUTE = "other"  # paths that match no route (404s): one label, whatever was asked for


@dataclass
class _Labels:
    """What the engine learned about the request in flight (set through the context variable)."""

    model: str = ""


_current: ContextVar[_Labels | None] = ContextVar("ember_request_labels", default=None)


class EngineMetrics:
    """Counters and histograms of the engine, in their own registry; also the Engine's observer."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("ember_requests", "HTTP requests by route, model and status.",
                                ["route", "model", "status"], registry=self.registry)
        self.duration = Histogram("ember_request_duration_seconds", "Time from request to last byte.",
                                  ["route", "model"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.prompt_tokens = Counter("ember_prompt_tokens", "Prompt tokens processed (embeddings included).",
                                     ["model"], registry=self.registry)
        self.generated_tokens = Counter("ember_generated_tokens", "Tokens generated.", ["model"],
                                        registry=self.registry)
        self.ttft = Histogram("ember_time_to_first_token_seconds", "Time from start of generation (slot "
                              "wait and prompt processing included) to the first token.", ["model"],
                              buckets=TTFT_BUCKETS, registry=self.registry)
        self.queue = Histogram("ember_queue_wait_seconds", "Time a request waited for a slot, model load "
                               "included.", ["model"], buckets=QUEUE_BUCKETS, registry=self.registry)
        self.registry.register(SchedulerCollector(scheduler))

    # -- EngineObserver ---------------------------------------------------------------------------------------

    def resolved(self, model: str) -> None:
        labels = _current.get()
        if labels is not None:
            labels.model = model

    def queue_wait(self, model: str, seconds: float) -> None:
        self.queue.labels(model).observe(seconds)

    def first_token(self, model: str, seconds: float) -> None:
        self.ttft.labels(model).observe(seconds)

    def finished(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens.labels(model).inc(prompt_tokens)
        self.generated_tokens.labels(model).inc(completion_tokens)

    # -- HTTP -------------------------------------------------------------------------------------------------

    def request_done(self, route: str, model: str, status: int, seconds: float) -> None:
        self.requests.labels(route, model, str(status)).inc()
        self.duration.labels(route, model).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class SchedulerCollector(Collector):
    """Gauges read from the scheduler when Prometheus scrapes, so they can never drift from its state."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily("ember_active_requests", "Requests holding a slot, per model.",
                                   labels=["model"])
        queued = GaugeMetricFamily("ember_queued_requests", "Requests waiting for a slot or a load, per model.",
                                   labels=["model"])
        memory = GaugeMetricFamily("ember_model_memory_bytes", "Memory of a loaded model: weights plus KV cache.",
                                   labels=["model"])
        running = self.scheduler.running()
        names = {loaded.key: loaded.model.name.display for loaded in self.scheduler.loaded.values()}
        for row in running:
            active.add_metric([row.model.name.display], row.active)
            memory.add_metric([row.model.name.display], row.size)
        for key, waiting in self.scheduler.waiting.items():
            if waiting:
                queued.add_metric([names.get(key) or _display(key)], waiting)
        loaded = GaugeMetricFamily("ember_loaded_models", "Models loaded (with a live runner).", value=len(running))
        restarts = CounterMetricFamily("ember_runner_restarts", "Runners found dead (crashed, killed, wedged) "
                                       "and dropped; the next request loads a fresh one.", labels=["model"])
        for model, count in sorted(self.scheduler.runner_restarts.items()):
            restarts.add_metric([model], count)
        yield from (active, queued, loaded, memory, restarts)


def _display(key: str) -> str:
    try:
        return ModelName.parse(key).display
    except EmberError:
        return key


class RequestMetrics:
    """Counts and times every HTTP request (to its last byte), labelled by route template and status."""

    def __init__(self, app: ASGIApp, metrics: EngineMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        labels = _Labels()
        token = _current.set(labels)
        status = 500  # what the client sees if the app raises before it starts a response
        started = time.perf_counter()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            _current.reset(token)
            self.metrics.request_done(_route(scope), labels.model, status, time.perf_counter() - started)


def _route(scope: Scope) -> str:
    """The matched route's path template (``/api/chat``), never the raw path a client sent."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else OTHER_ROUTE


router = APIRouter()


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)
