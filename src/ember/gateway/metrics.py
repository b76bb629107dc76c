"""The web role's /metrics: Prometheus text from a registry of its own, names prefixed ``ember_gateway_``.

Model and route labels come from what clients send, so each label keeps at most ``MAX_LABEL_VALUES`` distinct
values; later newcomers are counted under ``other``. A client inventing model names cannot grow the series
without bound. No label holds an API key or user.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

MAX_LABEL_VALUES = 200
OTHER = "other"
RATE_LIMIT_KINDS = ("requests", "tokens", "concurrency")
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class BoundedLabel:
    """Passes the first ``limit`` distinct values through and maps every later one to ``other``."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()  # metrics may be recorded from worker threads too

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(value)
        return value


class GatewayMetrics:
    """Counters, histograms and gauges of one web app (each app builds its own)."""

    def __init__(self, *, max_label_values: int = MAX_LABEL_VALUES) -> None:
        self.registry = CollectorRegistry()
        self._route = BoundedLabel(max_label_values)
        self._model = BoundedLabel(max_label_values)
        self._node = BoundedLabel(max_label_values)
        r = self.registry
        self.requests = Counter("ember_gateway_requests", "Requests through the web role by route, model and "
                                "status (refusals included).", ["route", "model", "status"], registry=r)
        self.duration = Histogram("ember_gateway_request_duration_seconds", "Time from request to last byte.",
                                  ["route", "model"], buckets=DURATION_BUCKETS, registry=r)
        self.ttft = Histogram("ember_gateway_time_to_first_token_seconds", "Time from request to the first "
                              "streamed byte of generated output.", ["model"], buckets=TTFT_BUCKETS, registry=r)
        self.prompt_tokens = Counter("ember_gateway_prompt_tokens", "Prompt tokens, from the engines' final counts.",
                                     ["model"], registry=r)
        self.generated_tokens = Counter("ember_gateway_generated_tokens", "Generated tokens, from the engines' "
                                        "final counts.", ["model"], registry=r)
        self.limited = Counter("ember_gateway_rate_limited", "Requests refused with 429, by the limit they hit.",
                               ["kind"], registry=r)
        self.active_requests = Gauge("ember_gateway_active_requests", "Requests in flight through the web role.",
                                     ["model"], registry=r)
        self.engine_up = Gauge("ember_gateway_engine_up", "1 while an engine node is healthy, else 0.", ["node"],
                               registry=r)
        for kind in RATE_LIMIT_KINDS:  # present at 0 from the start, so rate() works on the first refusal
            self.limited.labels(kind)

    def request_done(self, *, route: str, model: str, status: int, duration_s: float, ttft_s: float | None,
                     prompt_tokens: int, completion_tokens: int) -> None:
        route, model = self._route(route), self._model(model)
        self.requests.labels(route, model, str(status)).inc()
        self.duration.labels(route, model).observe(max(0.0, duration_s))
        if ttft_s is not None:
            self.ttft.labels(model).observe(max(0.0, ttft_s))
        if prompt_tokens > 0:
            self.prompt_tokens.labels(model).inc(prompt_tokens)
        if completion_tokens > 0:
            self.generated_tokens.labels(model).inc(completion_tokens)

    def rate_limited(self, kind: str) -> None:
        self.limited.labels(kind if kind in RATE_LIMIT_KINDS else OTHER).inc()

    def engine_health(self, node: str, healthy: bool) -> None:
        self.engine_up.labels(self._node(node)).set(1 if healthy else 0)

    def active(self, model: str) -> AbstractContextManager[None]:
        return self._active(self._model(model))

    @contextmanager
    def _active(self, model: str) -> Iterator[None]:
        gauge = self.active_requests.labels(model)
        gauge.inc()
        try:
            yield
        finally:
            gauge.dec()

    def watch_limiter(self, limiter: object) -> None:
        """Export ``ember_gateway_limits_degraded``: 1 while a Redis limiter has fallen back to per-replica limits
        (Redis failing or slow), else 0. Read at scrape time from the limiter's ``degraded`` property."""
        gauge = Gauge("ember_gateway_limits_degraded", "1 while rate limits are per replica because Redis "
                      "failed or was slow (EMBER_REDIS_TIMEOUT), else 0.", registry=self.registry)
        gauge.set_function(lambda: 1.0 if getattr(limiter, "degraded", False) else 0.0)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
