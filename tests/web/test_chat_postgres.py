"""The chat backend on PostgreSQL (the machine's server): an answer streamed, stored, searched and stopped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ember.db import Database
from tests.gateway.harness import Accounts, RunningWeb
from tests.postgres_fixture import postgres_url  # noqa: F401 - the fixture is used by name
from tests.server_harness import RunningServer
from tests.web.chat_helpers import follow, new_chat, send, wait_engine_idle, wait_status
from tests.web.harness import logged_in, start_ui


@pytest.fixture
def ui_on_postgres(keyed_engine: RunningServer, postgres_url: str) -> Iterator[tuple[RunningWeb, Database]]:  # noqa: F811
    database = Database.open(postgres_url)
    database.migrate()
    running = start_ui(database, [keyed_engine.url])
    running.app.state.web.model_titles = False
    yield running, database
    running.stop()
    database.close()


def test_chat_turn_search_and_stop_on_postgresql(ui_on_postgres: tuple[RunningWeb, Database],
                                                 keyed_engine: RunningServer) -> None:
    running, database = ui_on_postgres
    browser = logged_in(running, database, Accounts(database).user("user"))
    chat = new_chat(browser, num_predict=12)
    turn = send(browser, chat["id"], "Name a fruit_with 50% sugar.")
    done = follow(browser, turn["assistant"]["id"]).done
    assert done["status"] == "done" and done["content"]
    found = browser.get("/ui/api/chats", params={"q": "FRUIT_WITH 50%"}).json()["chats"]
    assert [c["id"] for c in found] == [chat["id"]]

    wait_engine_idle(keyed_engine, within=60)
    long = new_chat(browser, num_predict=400)
    second = send(browser, long["id"], "Write a very long essay about the history of maps.")
    follow(browser, second["assistant"]["id"], until=lambda f: len(f.text) >= 10)
    assert browser.post(f"/ui/api/messages/{second['assistant']['id']}/stop").status_code == 202
    assert wait_engine_idle(keyed_engine, within=5) < 5
    assert wait_status(browser, long["id"], second["assistant"]["id"])["status"] == "stopped"
    browser.close()
