"""Background upkeep of the web role: expired browser sessions are deleted now and then.

A session row is otherwise deleted only when its token is presented after it expired, so rows of browsers that
never come back would pile up. Every replica runs this; the DELETE is idempotent, so they need no coordination.
"""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from ember.db.database import Database
from ember.db.sessions import purge_expired

log = logging.getLogger(__name__)

PURGE_EVERY = 3600.0  # seconds between sweeps of expired sessions


async def purge_sessions_forever(database: Database, every: float = PURGE_EVERY) -> None:
    """Delete expired sessions now, then every ``every`` seconds, until cancelled."""
    while True:
        try:
            purged = await anyio.to_thread.run_sync(purge_expired, database)
            if purged:
                log.info("deleted %d expired web sessions", purged)
        except SQLAlchemyError as exc:  # a database hiccup must not end the loop; the next sweep retries
            log.warning("could not delete expired web sessions: %s", exc)
        await asyncio.sleep(every)
