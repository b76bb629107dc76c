"""The UI's in-process calls of the gateway pipeline: a caller that gives up before the answer begins still
stops the engine, releases its limits and leaves its one audit row."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta

from ember.db import Database
from ember.db.audit import query_audit
from ember.db.sessions import create_session
from ember.db.users import create_user
from ember.web.app import create_app
from ember.web.inprocess import chat_as
from tests.gateway.harness import RunningWeb
from tests.server_harness import RunningServer
from tests.web.chat_helpers import active_on_engine, wait_engine_idle


def test_cancelling_before_the_first_byte_stops_the_engine_and_is_audited(
        ui: RunningWeb, web_db: Database, keyed_engine: RunningServer) -> None:
    app = create_app(ui.settings, database=web_db, check_interval=0.5, cooldown=2.0)  # run in this test's loop
    user = create_user(web_db, f"giver-upper-{time.monotonic_ns()}", "password-for-tests")
    web_user = create_session(web_db, user.id, timedelta(minutes=5)).user
    wait_engine_idle(keyed_engine, within=60)
    # Not streamed: the engine's status line comes with the whole answer, so the caller waits long for it.
    body = {"model": "smollm2:135m", "stream": False, "options": {"num_predict": 400, "temperature": 0.9},
            "messages": [{"role": "user", "content": "Write a very long story about a lighthouse."}]}

    async def give_up() -> None:
        async with app.router.lifespan_context(app):
            await cancel_while_waiting()  # leaving the lifespan writes the pending audit rows

    async def cancel_while_waiting() -> None:
        task = asyncio.ensure_future(chat_as(app.state.gateway, web_user, body, "127.0.0.1"))
        deadline = time.monotonic() + 30
        while not active_on_engine(keyed_engine):
            assert time.monotonic() < deadline, "the request never reached the engine"
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(give_up(), 90))
    assert wait_engine_idle(keyed_engine, within=10) < 10
    rows = query_audit(web_db, user=user.name)
    assert [row.status for row in rows] == [499], rows
