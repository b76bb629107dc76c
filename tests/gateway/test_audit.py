"""Audit rows for every kind of outcome, bodies only when asked, and retention."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from ember.db import Database
from ember.db.audit import AuditEvent, query_audit, record_audit_many
from ember.db.tables import utcnow
from ember.gateway.audit import AuditWriter
from tests.conftest import BUNDLED
from tests.gateway.harness import Accounts, RunningWeb, start_web
from tests.server_harness import RunningServer

CHAT = {"model": BUNDLED, "messages": [{"role": "user", "content": "Say hi."}], "stream": False,
        "options": {"num_predict": 4}}


def test_rows_for_success_refusal_and_failure(web: RunningWeb, accounts: Accounts) -> None:
    secret = accounts.key(scopes=("chat",))
    with web.client(secret) as client:
        ok = client.post("/api/chat", json=CHAT)
        streamed = client.post("/api/chat", json={**CHAT, "stream": True})
        forbidden = client.post("/api/embed", json={"model": BUNDLED, "input": "x"})
        failed = client.post("/api/chat", json={**CHAT, "model": "missing-model:1b"})
    unauthorized = httpx.post(web.url + "/api/chat", json=CHAT)
    ids = [r.headers["x-request-id"] for r in (ok, forbidden, failed, unauthorized)]
    web.flush_audit()
    rows = {r.request_id: r for r in query_audit(web.gateway.database, limit=200)}
    done, refused, missing, anonymous = (rows[i] for i in ids)
    stream_row = rows[streamed.headers["x-request-id"]]

    assert (done.status, done.route, done.model, done.method) == (200, "/api/chat", BUNDLED, "POST")
    assert done.user_name == accounts.shared_user and done.key_name and done.client == "127.0.0.1"
    assert done.prompt_tokens and done.completion_tokens == 4 and done.done_reason == "length"
    assert done.node == web.gateway.pool.nodes[0].name and done.duration_ms and done.ttft_ms is None
    assert done.prompt_body is None and done.response_body is None
    assert stream_row.ttft_ms is not None and stream_row.duration_ms is not None
    assert 0 < stream_row.ttft_ms <= stream_row.duration_ms and stream_row.completion_tokens == 4

    assert refused.status == 403 and "embed" in (refused.error or "") and refused.key_name == done.key_name
    assert missing.status == 404 and "not found" in (missing.error or "") and missing.node is not None
    assert anonymous.status == 401 and anonymous.user_name is None and anonymous.key_name is None


@pytest.fixture
def web_with_bodies(keyed_engine: RunningServer, fresh_db: Database) -> Iterator[RunningWeb]:
    running = start_web(fresh_db, [keyed_engine.url], audit_bodies=True)
    yield running
    running.stop()


def test_bodies_are_kept_when_asked(web_with_bodies: RunningWeb, fresh_db: Database) -> None:
    secret = Accounts(fresh_db).key()
    with web_with_bodies.client(secret) as client:
        answer = client.post("/api/chat", json=CHAT).json()
    web_with_bodies.flush_audit()
    row = query_audit(fresh_db, limit=1)[0]
    assert row.prompt_body is not None and "Say hi." in row.prompt_body
    assert row.response_body is not None and answer["message"]["content"] in row.response_body


def _event(age: timedelta, body: str | None = None) -> AuditEvent:
    return AuditEvent(time=utcnow() - age, request_id=f"old-{age.total_seconds():.0f}", user_name="u",
                      key_name="k", client=None, method="POST", route="/api/chat", model=None, status=200,
                      prompt_body=body, response_body=body)


def test_retention_purges_rows_and_then_bodies(fresh_db: Database) -> None:
    record_audit_many(fresh_db, [_event(timedelta(days=40)), _event(timedelta(days=10), "secret prompt"),
                                 _event(timedelta(hours=1), "recent prompt")])
    writer = AuditWriter(fresh_db, retention_s=30 * 86400, body_retention_s=7 * 86400)
    assert writer.purge() == (1, 1)
    rows = sorted(query_audit(fresh_db), key=lambda r: r.time)
    assert [r.request_id for r in rows] == ["old-864000", "old-3600"]
    assert rows[0].prompt_body is None and rows[1].prompt_body == "recent prompt"


def test_writer_writes_in_the_background_and_purges_at_start(fresh_db: Database) -> None:
    record_audit_many(fresh_db, [_event(timedelta(days=2))])
    writer = AuditWriter(fresh_db, retention_s=86400, body_retention_s=86400, flush_interval=0.05)
    writer.start()
    try:
        for n in range(1200):  # more than one batch
            writer.submit(AuditEvent(time=utcnow(), request_id=f"r{n}", user_name=None, key_name=None,
                                     client=None, method="GET", route="/api/tags", model=None, status=200))
        assert writer.flush(20)
    finally:
        writer.close()
    rows = query_audit(fresh_db, limit=5000)
    assert len(rows) == 1200 and all(r.request_id.startswith("r") for r in rows)
