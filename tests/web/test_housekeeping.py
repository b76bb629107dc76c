"""Expired browser sessions are swept from the database by the web role, not left to pile up."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from ember.db import Database
from ember.db.sessions import create_session
from ember.db.tables import WebSessionRow
from ember.db.users import create_user
from ember.web.housekeeping import purge_sessions_forever


def sessions(db: Database) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(WebSessionRow)) or 0)


async def test_expired_sessions_are_swept_and_live_ones_kept(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'ember.db'}")
    db.migrate()
    try:
        user = create_user(db, "sleeper", "password-for-tests")
        for _ in range(3):  # browsers that logged in and never came back
            create_session(db, user.id, timedelta(seconds=-1))
        live = create_session(db, user.id, timedelta(hours=1))
        assert sessions(db) == 4
        sweeper = asyncio.create_task(purge_sessions_forever(db, every=0.05))
        for _ in range(100):
            if sessions(db) == 1:
                break
            await asyncio.sleep(0.05)
        assert not sweeper.done()  # it keeps running
        sweeper.cancel()
        assert sessions(db) == 1
        with db.reading() as session:
            assert session.scalar(select(WebSessionRow.id)) == live.user.session_id
    finally:
        db.close()
