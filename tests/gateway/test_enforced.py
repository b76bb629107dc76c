"""Limits, model policy and metrics through the real web app in front of a real engine: 429 with Retry-After
over --rpm and --concurrency, one shared limit for two web replicas on one Redis, a locked num_ctx served at
the locked value without a reload, and /metrics behind the admin scope (never showing a secret)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ember.db import Database
from ember.db.audit import query_audit
from ember.db.policies import ModelPolicy, delete_policy, set_policy
from tests.conftest import BUNDLED
from tests.gateway.conftest import REDIS_URL
from tests.gateway.harness import Accounts, RunningWeb, start_web
from tests.server_harness import RunningServer

CHAT = {"model": BUNDLED, "stream": False, "options": {"num_predict": 2},
        "messages": [{"role": "user", "content": "Hi"}]}
RATE_HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests")


def test_over_rpm_is_429_with_retry_after_and_rate_headers(web: RunningWeb, accounts: Accounts) -> None:
    secret = accounts.key(rpm=2)
    with web.client(secret) as client:
        first = client.get("/api/tags")
        second = client.get("/v1/models")
        refused = client.post("/v1/chat/completions", json={"model": BUNDLED, "messages": CHAT["messages"]})
    assert first.status_code == second.status_code == 200
    assert [first.headers[h] for h in RATE_HEADERS[:2]] == ["2", "1"]
    assert refused.status_code == 429 and float(refused.headers["retry-after"]) > 0
    assert all(h in refused.headers for h in RATE_HEADERS) and refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    web.flush_audit()
    assert query_audit(web.gateway.database, status=429, limit=1)[0].error


def test_concurrency_1_refuses_a_parallel_request(web: RunningWeb, accounts: Accounts) -> None:
    secret = accounts.key(concurrency=1)
    started = threading.Event()
    results: list[int] = []

    def long_stream() -> None:
        body = {**CHAT, "stream": True, "options": {"num_predict": 64}}
        with web.client(secret) as client, client.stream("POST", "/api/chat", json=body) as response:
            for _ in response.iter_lines():
                started.set()
            results.append(response.status_code)

    worker = threading.Thread(target=long_stream)
    worker.start()
    assert started.wait(60)
    with web.client(secret) as client:
        second = client.post("/api/chat", json=CHAT)
    worker.join(120)
    assert second.status_code == 429 and "retry-after" in second.headers
    assert results == [200]
    with web.client(secret) as client:
        assert client.post("/api/chat", json=CHAT).status_code == 200  # the slot came back


@pytest.fixture
def replicas(keyed_engine: RunningServer, fresh_db: Database) -> Iterator[tuple[RunningWeb, RunningWeb]]:
    prefix = f"ember-test-{uuid.uuid4().hex[:10]}:"
    one = start_web(fresh_db, [keyed_engine.url], redis_url=REDIS_URL, redis_prefix=prefix)
    two = start_web(fresh_db, [keyed_engine.url], redis_url=REDIS_URL, redis_prefix=prefix)
    yield one, two
    one.stop()
    two.stop()


def test_two_web_replicas_share_one_limit_through_redis(replicas: tuple[RunningWeb, RunningWeb],
                                                         fresh_db: Database) -> None:
    secret = Accounts(fresh_db).key(rpm=3)
    statuses = []
    for n in range(4):
        with replicas[n % 2].client(secret) as client:
            statuses.append(client.get("/api/tags").status_code)
    assert statuses == [200, 200, 200, 429]


def _context_length(engine: RunningServer) -> dict[str, int]:
    return {row.model.name.display: row.context_length for row in engine.services.scheduler.running()}


def test_locked_num_ctx_is_served_at_the_locked_value_without_reload(web: RunningWeb, keyed_engine: RunningServer,
                                                                      accounts: Accounts) -> None:
    secret = accounts.key()
    set_policy(accounts.database, ModelPolicy(model=BUNDLED, defaults={"num_ctx": 2048},
                                              locked=frozenset({"num_ctx"})))
    try:
        time.sleep(5.5)  # the web role rereads policies every 5 s
        with web.client(secret) as client:
            assert client.post("/api/chat", json=CHAT).status_code == 200
            before = _context_length(keyed_engine)
            asked = client.post("/api/chat", json={**CHAT, "options": {"num_ctx": 32768, "num_predict": 2}})
        assert asked.status_code == 200 and "num_ctx" in asked.headers["x-ember-overridden"]
        assert _context_length(keyed_engine) == before and before[BUNDLED] <= 2048
    finally:
        delete_policy(accounts.database, BUNDLED)


def test_web_metrics_need_admin_and_parse(web: RunningWeb, accounts: Accounts) -> None:
    user_key, admin_key = accounts.key(), accounts.key(scopes=("admin",))
    assert httpx.get(web.url + "/metrics").status_code == 401
    assert httpx.get(web.url + "/metrics", headers={"x-api-key": user_key}).status_code == 403

    def requests_total() -> float:
        text = httpx.get(web.url + "/metrics", headers={"x-api-key": admin_key}).text
        assert user_key[9:] not in text and admin_key[9:] not in text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        return sum(s.value for s in families["ember_gateway_requests"].samples if s.name.endswith("_total"))

    before = requests_total()
    with web.client(user_key) as client:
        assert client.post("/api/chat", json=CHAT).status_code == 200
    assert requests_total() >= before + 1


def test_metrics_public_needs_no_key(keyed_engine: RunningServer, fresh_db: Database) -> None:
    running = start_web(fresh_db, [keyed_engine.url], metrics_public=True)
    try:
        assert httpx.get(running.url + "/metrics").status_code == 200
    finally:
        running.stop()
