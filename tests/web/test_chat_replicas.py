"""Two web replicas on one database: an answer generated on one is followed and stopped through the other,
and a replica that shuts down mid-answer stores how far it got and frees the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from ember.db import Database
from ember.db.chats import Message, add_messages, read_message
from ember.db.ids import new_id
from ember.db.tables import utcnow
from ember.db.users import get_user
from ember.web.services import WebUI
from tests.gateway.harness import Accounts, RunningWeb
from tests.server_harness import RunningServer
from tests.web.chat_helpers import follow, new_chat, send, stored_message, wait_engine_idle, wait_status
from tests.web.harness import Browser, logged_in, start_ui


@pytest.fixture
def replica(keyed_engine: RunningServer, web_db: Database) -> Iterator[RunningWeb]:
    running = start_ui(web_db, [keyed_engine.url])
    web_ui: WebUI = running.app.state.web
    web_ui.model_titles = False
    yield running
    running.stop()


@pytest.fixture
def same_user_on_both(ui: RunningWeb, replica: RunningWeb, web_db: Database,
                      accounts: Accounts) -> Iterator[tuple[Browser, Browser]]:
    name = accounts.user("user")
    here, there = logged_in(ui, web_db, name), logged_in(replica, web_db, name)
    ui.app.state.web.model_titles = False
    yield here, there
    ui.app.state.web.model_titles = True
    here.close()
    there.close()


def test_another_replica_follows_the_stored_answer_to_its_end(same_user_on_both: tuple[Browser, Browser]) -> None:
    here, there = same_user_on_both
    chat = new_chat(here, num_predict=60)
    turn = send(here, chat["id"], "Describe a sunrise over the mountains.")
    mid = turn["assistant"]["id"]
    followed = follow(there, mid)  # polls the database: the answer is generated on the other replica
    final = stored_message(here, chat["id"], mid)
    assert final["status"] == "done" and followed.done["status"] == "done"
    assert followed.text == final["content"] and any(e.name == "delta" for e in followed.events)


def test_stop_through_another_replica_stops_the_engine(same_user_on_both: tuple[Browser, Browser],
                                                      keyed_engine: RunningServer) -> None:
    wait_engine_idle(keyed_engine, within=60)
    here, there = same_user_on_both
    chat = new_chat(here, num_predict=400)
    turn = send(here, chat["id"], "Write a very long essay about the history of ships.")
    mid = turn["assistant"]["id"]
    follow(here, mid, until=lambda f: len(f.text) >= 10)
    assert there.post(f"/ui/api/messages/{mid}/stop").status_code == 202
    assert wait_engine_idle(keyed_engine, within=5) < 5  # seen by the generating replica at its next store
    final = wait_status(here, chat["id"], mid, within=10)
    assert final["status"] == "stopped" and final["content"]


def test_a_replica_shutting_down_mid_answer_stores_it_and_frees_the_engine(
        replica: RunningWeb, web_db: Database, accounts: Accounts, keyed_engine: RunningServer,
        browser_for: Callable[[str], Browser]) -> None:
    wait_engine_idle(keyed_engine, within=60)
    browser = logged_in(replica, web_db, accounts.user("user"))
    chat = new_chat(browser, num_predict=400)
    turn = send(browser, chat["id"], "Write a very long essay about the history of trains.")
    mid = turn["assistant"]["id"]
    seen = follow(browser, mid, until=lambda f: len(f.text) >= 10)
    browser.close()
    replica.stop()
    assert wait_engine_idle(keyed_engine, within=5) < 5
    stopped = read_message(web_db, mid)
    assert stopped is not None and stopped.status == "failed" and stopped.content.startswith(seen.text)
    assert stopped.error == "the server stopped during the answer"


def test_an_answer_whose_generator_died_is_marked_failed(browser_for: Callable[[str], Browser],
                                                         web_db: Database) -> None:
    browser = browser_for("user")
    chat = new_chat(browser)
    user = get_user(web_db, browser.user_name)
    assert user is not None
    long_ago = utcnow() - timedelta(minutes=5)
    orphan = Message(id=new_id(), chat_id=chat["id"], parent_id=None, role="assistant", content="Half an ans",
                     status="streaming", created_at=long_ago, updated_at=long_ago)
    add_messages(web_db, user.id, chat["id"], [orphan])
    followed = follow(browser, orphan.id)
    assert followed.events[0].data == {"content": "Half an ans", "thinking": "", "status": "streaming"}
    assert followed.done["status"] == "failed" and "stopped before it was done" in followed.done["error"]
    assert followed.done["content"] == "Half an ans"
