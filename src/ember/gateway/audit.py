"""Audit rows, written off the event loop: requests enqueue an event, one thread writes them in batches.

A request never waits for the database. If the database is down, events wait in a bounded queue (the newest
are dropped past ``MAX_PENDING``, and the log says how many). The same thread purges rows past
EMBER_AUDIT_RETENTION, and prompt/response bodies past EMBER_AUDIT_BODY_RETENTION, once at start and then
every ``purge_interval`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from ember.db.audit import AuditEvent, purge_audit, purge_audit_bodies, record_audit_many
from ember.db.database import Database
from ember.db.tables import utcnow
from ember.errors import EmberError

log = logging.getLogger(__name__)

MAX_PENDING = 100_000
BATCH = 500


class AuditWriter:
    """Requests append events to a deque (thread-safe, and no thread wake-up per event: waking the writer on
    every request cost the event loop milliseconds in GIL hand-overs); the writer thread takes what is there
    every ``flush_interval`` seconds and writes it in batches."""

    def __init__(self, database: Database, *, retention_s: float, body_retention_s: float,
                 flush_interval: float = 0.25, purge_interval: float = 3600.0) -> None:
        self.database = database
        self.retention_s = retention_s
        self.body_retention_s = body_retention_s
        self.flush_interval = flush_interval
        self.purge_interval = purge_interval
        self._pending: deque[AuditEvent] = deque()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._submitted = 0
        self._written = 0  # written or given up on
        self._thread: threading.Thread | None = None
        self._dropped = 0
        self._next_purge = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(self, event: AuditEvent) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.error("audit queue full: %d audit events dropped so far", self._dropped)
            return
        self._submitted += 1
        self._pending.append(event)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event submitted so far is written (or given up on); False on timeout."""
        target = self._submitted
        with self._idle:
            return self._idle.wait_for(lambda: self._written >= target, timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self.flush_interval)
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
                self._write(batch)
                with self._idle:
                    self._written += len(batch)
                    self._idle.notify_all()
            if stopping:
                return
            self._purge_when_due()

    def _write(self, batch: list[AuditEvent]) -> None:
        for attempt in range(3):
            try:
                record_audit_many(self.database, batch)
                return
            except (SQLAlchemyError, EmberError) as exc:
                if attempt == 2:
                    log.error("could not write %d audit events: %s", len(batch), exc)
                time.sleep(0.2 * (attempt + 1))

    def _purge_when_due(self) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + self.purge_interval
        try:
            self.purge()
        except (SQLAlchemyError, EmberError) as exc:
            log.warning("audit retention purge failed: %s", exc)

    def purge(self) -> tuple[int, int]:
        """Delete rows past retention and bodies past body retention; returns (rows, bodies) removed."""
        now = utcnow()
        rows = purge_audit(self.database, now - timedelta(seconds=self.retention_s))
        bodies = purge_audit_bodies(self.database, now - timedelta(seconds=self.body_retention_s))
        if rows or bodies:
            log.info("audit retention: removed %d rows and the bodies of %d more", rows, bodies)
        return rows, bodies
