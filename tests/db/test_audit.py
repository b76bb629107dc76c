"""The audit log: written in batches, filtered, newest first, purged by age."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from ember.db import Database
from ember.db.audit import AuditEvent, purge_audit, purge_audit_bodies, query_audit, record_audit, record_audit_many

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def event(minutes: int, **changes: object) -> AuditEvent:
    base = AuditEvent(time=T0 + timedelta(minutes=minutes), request_id=f"req-{minutes}", user_name="alice",
                      key_name="laptop", client="127.0.0.1", method="POST", route="/api/chat",
                      model="smollm2:135m", status=200)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field(db: Database) -> None:
    full = event(0, prompt_tokens=12, completion_tokens=34, ttft_ms=12.5, duration_ms=250.25, done_reason="stop",
                 node="http://10.0.0.2:11434", error=None, prompt_body='{"messages": []}', response_body="hi")
    record_audit(db, full)
    assert query_audit(db) == [full]


def test_newest_first_with_filters_and_limit(db: Database) -> None:
    record_audit_many(db, [
        event(0),
        event(1, user_name="bob", model="gemma3:270m"),
        event(2, status=401, user_name=None, key_name=None, model=None),
        event(3, model="gemma3:270m", status=429),
    ])
    assert [e.request_id for e in query_audit(db)] == ["req-3", "req-2", "req-1", "req-0"]
    assert [e.request_id for e in query_audit(db, user="alice")] == ["req-3", "req-0"]
    assert [e.request_id for e in query_audit(db, model="gemma3:270m")] == ["req-3", "req-1"]
    assert [e.request_id for e in query_audit(db, since=T0 + timedelta(minutes=2))] == ["req-3", "req-2"]
    assert [e.request_id for e in query_audit(db, user="alice", model="smollm2:135m")] == ["req-0"]
    assert [e.request_id for e in query_audit(db, status=401)] == ["req-2"]
    assert [e.request_id for e in query_audit(db, limit=2)] == ["req-3", "req-2"]
    assert query_audit(db, user="nobody") == []


def test_route_until_and_offset_select_a_page(db: Database) -> None:
    record_audit_many(db, [event(m, route="/api/tags" if m % 2 else "/api/chat") for m in range(6)])
    assert [e.request_id for e in query_audit(db, route="/api/tags")] == ["req-5", "req-3", "req-1"]
    # until is exclusive, so pages pinned to one instant never repeat or skip the event at the boundary
    assert [e.request_id for e in query_audit(db, until=T0 + timedelta(minutes=2))] == ["req-1", "req-0"]
    pages = [[e.request_id for e in query_audit(db, limit=4, offset=o)] for o in (0, 4, 8)]
    assert pages == [["req-5", "req-4", "req-3", "req-2"], ["req-1", "req-0"], []]
    assert [e.request_id for e in query_audit(db, route="/api/chat", limit=1, offset=1)] == ["req-2"]


def test_times_come_back_aware_utc_whatever_zone_went_in(db: Database) -> None:
    east = datetime(2026, 1, 1, 15, 0, tzinfo=timezone(timedelta(hours=3)))
    record_audit(db, event(0, time=east))
    (back,) = query_audit(db)
    assert back.time == T0 and back.time.tzinfo is not None and back.time.utcoffset() == timedelta(0)


def test_purge_by_age(db: Database) -> None:
    record_audit_many(db, [event(m) for m in range(10)])
    assert purge_audit(db, T0 + timedelta(minutes=4)) == 4
    assert [e.request_id for e in query_audit(db)][-1] == "req-4"
    assert purge_audit(db, T0) == 0


def test_purge_bodies_keeps_the_rows(db: Database) -> None:
    record_audit_many(db, [event(0, prompt_body="p", response_body="r"), event(5, prompt_body="p2")])
    assert purge_audit_bodies(db, T0 + timedelta(minutes=1)) == 1
    newer, older = query_audit(db)
    assert (older.prompt_body, older.response_body, older.status) == (None, None, 200)
    assert newer.prompt_body == "p2"


def test_hostile_values_are_stored_as_data_and_cut_to_size(db: Database) -> None:
    sql = "x'); DROP TABLE audit_events; --"
    record_audit(db, event(0, user_name=sql, route="/api/" + "a" * 100_000, client=sql))
    (back,) = query_audit(db, user=sql)
    assert back.client == sql and len(back.route) == 4096


def test_empty_batch_is_fine(db: Database) -> None:
    record_audit_many(db, [])
    assert query_audit(db) == []
