"""The web role's metrics object: what it renders parses with prometheus_client's own parser, counters move,
and client-chosen label values cannot grow the series without bound."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ember.gateway.metrics import GatewayMetrics


def samples(metrics: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return samples(metrics).get((name, tuple(sorted(labels.items()))), 0.0)


def test_request_done_moves_counts_tokens_and_histograms() -> None:
    metrics = GatewayMetrics()
    for _ in range(2):
        metrics.request_done(route="/api/chat", model="smollm2:135m", status=200, duration_s=0.4, ttft_s=0.1,
                             prompt_tokens=12, completion_tokens=5)
    metrics.request_done(route="/v1/chat/completions", model="smollm2:135m", status=429, duration_s=0.001,
                         ttft_s=None, prompt_tokens=0, completion_tokens=0)
    assert value(metrics, "ember_gateway_requests_total", route="/api/chat", model="smollm2:135m",
                 status="200") == 2
    assert value(metrics, "ember_gateway_requests_total", route="/v1/chat/completions", model="smollm2:135m",
                 status="429") == 1
    assert value(metrics, "ember_gateway_prompt_tokens_total", model="smollm2:135m") == 24
    assert value(metrics, "ember_gateway_generated_tokens_total", model="smollm2:135m") == 10
    assert value(metrics, "ember_gateway_time_to_first_token_seconds_count", model="smollm2:135m") == 2
    assert value(metrics, "ember_gateway_request_duration_seconds_count", route="/api/chat",
                 model="smollm2:135m") == 2
    assert value(metrics, "ember_gateway_request_duration_seconds_bucket", route="/api/chat", model="smollm2:135m",
                 le="0.5") == 2


def test_rate_limited_engine_health_and_active_requests() -> None:
    metrics = GatewayMetrics()
    assert value(metrics, "ember_gateway_rate_limited_total", kind="tokens") == 0  # present before any refusal
    metrics.rate_limited("requests")
    metrics.rate_limited("requests")
    metrics.rate_limited("concurrency")
    assert value(metrics, "ember_gateway_rate_limited_total", kind="requests") == 2
    assert value(metrics, "ember_gateway_rate_limited_total", kind="concurrency") == 1
    metrics.engine_health("http://10.0.0.1:11434", True)
    metrics.engine_health("http://10.0.0.2:11434", False)
    assert value(metrics, "ember_gateway_engine_up", node="http://10.0.0.1:11434") == 1
    assert value(metrics, "ember_gateway_engine_up", node="http://10.0.0.2:11434") == 0
    with metrics.active("smollm2:135m"), metrics.active("smollm2:135m"):
        assert value(metrics, "ember_gateway_active_requests", model="smollm2:135m") == 2
    assert value(metrics, "ember_gateway_active_requests", model="smollm2:135m") == 0


def test_active_gauge_drops_when_the_request_fails() -> None:
    metrics = GatewayMetrics()
    try:
        with metrics.active("m:latest"):
            raise RuntimeError("upstream broke")
    except RuntimeError:
        pass
    assert value(metrics, "ember_gateway_active_requests", model="m:latest") == 0


def test_invented_model_names_share_one_other_label_past_the_cap() -> None:
    metrics = GatewayMetrics(max_label_values=3)
    for index in range(50):
        metrics.request_done(route="/api/chat", model=f"made-up-{index}", status=404, duration_s=0.01, ttft_s=None,
                             prompt_tokens=0, completion_tokens=0)
    models = {dict(labels)["model"] for (name, labels) in samples(metrics) if name == "ember_gateway_requests_total"}
    assert models == {"made-up-0", "made-up-1", "made-up-2", "other"}
    assert value(metrics, "ember_gateway_requests_total", route="/api/chat", model="other", status="404") == 47


def test_each_app_has_its_own_registry_and_no_key_label() -> None:
    first, second = GatewayMetrics(), GatewayMetrics()
    first.rate_limited("tokens")
    assert value(second, "ember_gateway_rate_limited_total", kind="tokens") == 0
    body = first.render()[0].decode()
    assert "key" not in {label for (_, labels) in samples(first) for label, _ in labels}
    assert all(line.startswith(("# ", "ember_gateway_")) for line in body.splitlines() if line)


async def test_limits_degraded_follows_a_redis_limiter_falling_back() -> None:
    from ember.config import Settings
    from ember.gateway.limits import MemoryLimiter, Quota, RedisLimiter
    from tests.server_harness import free_port

    metrics = GatewayMetrics()
    limiter = RedisLimiter.from_settings(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0",
                                                  redis_timeout=0.2))  # nothing listens there
    metrics.watch_limiter(limiter)
    assert value(metrics, "ember_gateway_limits_degraded") == 0
    await limiter.admit("k", Quota(rpm=5))
    assert value(metrics, "ember_gateway_limits_degraded") == 1
    await limiter.aclose()
    memory = GatewayMetrics()
    memory.watch_limiter(MemoryLimiter())
    assert value(memory, "ember_gateway_limits_degraded") == 0
