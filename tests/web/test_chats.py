"""The chat API against a real engine: answers generated on the server and stored as they grow, streams that
can be left and picked up again, Stop that stops the engine, branches, and the gateway's audit as the user."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from ember.db import Database
from ember.db.audit import query_audit
from ember.web.services import WebUI
from tests.conftest import BUNDLED
from tests.gateway.harness import RunningWeb
from tests.server_harness import RunningServer
from tests.web.chat_helpers import (
    Followed,
    follow,
    new_chat,
    send,
    stored,
    stored_message,
    wait_engine_idle,
    wait_status,
)
from tests.web.harness import Browser

BrowserFor = Callable[[str], Browser]
pytestmark = pytest.mark.usefixtures("no_model_titles")


def test_an_answer_streams_to_done_and_is_stored(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    chat = new_chat(browser)
    turn = send(browser, chat["id"], "Name three colours.")
    assert turn["user"]["content"] == "Name three colours." and turn["assistant"]["status"] == "streaming"
    assert turn["assistant"]["parent_id"] == turn["user"]["id"] and turn["user"]["parent_id"] is None

    followed = follow(browser, turn["assistant"]["id"])
    assert followed.events[0].name == "snapshot" and any(e.name == "delta" for e in followed.events)
    done = followed.done
    assert done["status"] == "done" and done["content"] and followed.text == done["content"]
    assert done["stats"]["eval_count"] <= 8 and done["stats"]["done_reason"] in ("stop", "length")

    again = stored(browser, chat["id"])
    assert again["leaf_id"] == turn["assistant"]["id"] and again["title"] == "Name three colours."
    assert [m["content"] for m in again["messages"]] == ["Name three colours.", done["content"]]


def test_a_second_follower_gets_the_text_so_far_and_the_rest(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=80)
    turn = send(browser, chat["id"], "Tell me a story about a fox in a forest.")
    mid = turn["assistant"]["id"]
    first: list[Followed] = []
    underway = threading.Event()

    def note_progress(followed: Followed) -> bool:
        if sum(e.name == "delta" for e in followed.events) >= 2:
            underway.set()
        return False  # keep following to the end

    reader = threading.Thread(target=lambda: first.append(follow(browser, mid, until=note_progress)))
    reader.start()
    assert underway.wait(60)
    second = follow(browser, mid)  # a second tab, opened mid-answer
    reader.join(120)
    assert second.events[0].name == "snapshot" and second.events[0].data["content"]
    final = stored_message(browser, chat["id"], mid)
    assert final["status"] == "done"
    assert second.text == final["content"] == first[0].text == second.done["content"]


def test_a_follower_joining_mid_answer_gets_a_snapshot_then_deltas(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=120)
    turn = send(browser, chat["id"], "Write a long poem about the sea.")
    mid = turn["assistant"]["id"]
    follow(browser, mid, until=lambda f: len(f.text) >= 20)  # wait until some text exists, then leave
    late = follow(browser, mid)
    assert late.events[0].name == "snapshot" and len(late.events[0].data["content"]) >= 20
    final = stored_message(browser, chat["id"], mid)
    assert final["status"] == "done" and late.text == final["content"]


def test_leaving_the_stream_does_not_stop_the_answer(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=40)
    turn = send(browser, chat["id"], "Count from one to twenty in words.")
    left = follow(browser, turn["assistant"]["id"], until=lambda f: any(e.name == "delta" for e in f.events))
    assert left.events[-1].name == "delta"
    final = wait_status(browser, chat["id"], turn["assistant"]["id"])
    assert final["status"] == "done" and final["content"].startswith(left.text)
    assert final["stats"]["eval_count"] >= 1


def test_stop_stops_the_engine(browser_for: BrowserFor, keyed_engine: RunningServer) -> None:
    wait_engine_idle(keyed_engine, within=60)
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=400)
    turn = send(browser, chat["id"], "Write a very long essay about the history of bridges.")
    mid = turn["assistant"]["id"]
    seen = follow(browser, mid, until=lambda f: len(f.text) >= 10)
    stopped = browser.post(f"/ui/api/messages/{mid}/stop")
    assert stopped.status_code == 202
    assert wait_engine_idle(keyed_engine, within=5) < 5
    final = wait_status(browser, chat["id"], mid, within=10)
    assert final["status"] == "stopped" and final["content"].startswith(seen.text)
    assert follow(browser, mid).done["status"] == "stopped"  # a finished message: snapshot and done at once


def test_stop_right_after_sending_ends_the_request_cleanly(browser_for: BrowserFor, ui: RunningWeb,
                                                          web_db: Database, keyed_engine: RunningServer) -> None:
    wait_engine_idle(keyed_engine, within=60)
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=400)
    turn = send(browser, chat["id"], "Write a very long essay about the history of roads.")
    assert browser.post(f"/ui/api/messages/{turn['assistant']['id']}/stop").status_code == 202
    final = wait_status(browser, chat["id"], turn["assistant"]["id"], within=30)
    assert final["status"] == "stopped"
    assert wait_engine_idle(keyed_engine, within=5) < 5
    ui.flush_audit()
    rows = [r for r in query_audit(web_db, limit=500) if r.user_name == browser.user_name]
    assert [(r.route, r.status) for r in rows] == [("/api/chat", 499)]  # finished once, as a client that left


def test_regenerate_and_edit_make_branches(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=6)
    turn = send(browser, chat["id"], "Say hello.")
    wait_status(browser, chat["id"], turn["assistant"]["id"])
    user_id, first_answer = turn["user"]["id"], turn["assistant"]["id"]

    again = browser.post(f"/ui/api/chats/{chat['id']}/messages/{first_answer}/regenerate")
    assert again.status_code == 201
    second_answer = again.json()["assistant"]
    assert second_answer["parent_id"] == user_id and second_answer["id"] != first_answer
    wait_status(browser, chat["id"], second_answer["id"])

    edited = browser.post(f"/ui/api/chats/{chat['id']}/messages/{user_id}/edit", json={"content": "Say bye."})
    assert edited.status_code == 201
    new_user, new_answer = edited.json()["user"], edited.json()["assistant"]
    assert new_user["parent_id"] is None and new_answer["parent_id"] == new_user["id"]
    wait_status(browser, chat["id"], new_answer["id"])

    tree = stored(browser, chat["id"])
    assert tree["leaf_id"] == new_answer["id"]
    children = {m["id"]: [c["id"] for c in tree["messages"] if c["parent_id"] == m["id"]] for m in tree["messages"]}
    assert sorted(children[user_id]) == sorted([first_answer, second_answer["id"]])
    roots = [m["id"] for m in tree["messages"] if m["parent_id"] is None]
    assert sorted(roots) == sorted([user_id, new_user["id"]])

    back = browser.send("PATCH", f"/ui/api/chats/{chat['id']}", json={"leaf_id": first_answer})
    assert back.status_code == 200 and back.json()["leaf_id"] == first_answer
    wrong_kind = browser.post(f"/ui/api/chats/{chat['id']}/messages/{user_id}/regenerate")
    assert wrong_kind.status_code == 400

    # A follow-up continues the branch shown (the leaf), not the newest one.
    follow_up = send(browser, chat["id"], "And again?")
    assert follow_up["user"]["parent_id"] == first_answer
    wait_status(browser, chat["id"], follow_up["assistant"]["id"])


def test_another_users_ids_are_not_found_on_every_route(browser_for: BrowserFor) -> None:
    owner, other = browser_for("user"), browser_for("user")
    chat = new_chat(owner, num_predict=4)
    turn = send(owner, chat["id"], "Hi.")
    wait_status(owner, chat["id"], turn["assistant"]["id"])
    cid, uid, aid = chat["id"], turn["user"]["id"], turn["assistant"]["id"]
    attempts = [
        ("GET", f"/ui/api/chats/{cid}", None),
        ("PATCH", f"/ui/api/chats/{cid}", {"title": "mine now"}),
        ("DELETE", f"/ui/api/chats/{cid}", None),
        ("GET", f"/ui/api/chats/{cid}/export?format=json", None),
        ("GET", f"/ui/api/chats/{cid}/export?format=markdown", None),
        ("POST", f"/ui/api/chats/{cid}/messages", {"content": "hello"}),
        ("POST", f"/ui/api/chats/{cid}/messages/{aid}/regenerate", None),
        ("POST", f"/ui/api/chats/{cid}/messages/{uid}/edit", {"content": "changed"}),
        ("GET", f"/ui/api/messages/{aid}/stream", None),
        ("POST", f"/ui/api/messages/{aid}/stop", None),
    ]
    for method, url, body in attempts:
        response = other.send(method, url, json=body) if body is not None else other.send(method, url)
        assert response.status_code == 404, (method, url, response.status_code, response.text)
        missing = other.send(method, url.replace(cid, "A" * 22).replace(aid, "B" * 22).replace(uid, "C" * 22),
                             **({"json": body} if body is not None else {}))
        assert missing.status_code == 404 and missing.json() == {"error": missing.json()["error"]}

    # Their own chat cannot point at the owner's messages either.
    theirs = new_chat(other)
    assert other.send("PATCH", f"/ui/api/chats/{theirs['id']}", json={"leaf_id": aid}).status_code == 404
    assert other.post(f"/ui/api/chats/{theirs['id']}/messages",
                      json={"content": "x", "parent_id": aid}).status_code == 404
    assert other.get("/ui/api/chats").json()["chats"] == [theirs]
    untouched = stored(owner, cid)
    assert untouched["title"] == "Hi." and len(untouched["messages"]) == 2
    assert stored_message(owner, cid, aid)["status"] == "done"


def test_ui_turns_are_audited_as_the_user(browser_for: BrowserFor, ui: RunningWeb, web_db: Database) -> None:
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=4)
    turn = send(browser, chat["id"], "Hello there.")
    wait_status(browser, chat["id"], turn["assistant"]["id"])
    ui.flush_audit()
    rows = [r for r in query_audit(web_db, limit=500) if r.user_name == browser.user_name]
    assert [(r.route, r.model, r.status) for r in rows] == [("/api/chat", BUNDLED, 200)]
    assert rows[0].key_name is None and rows[0].completion_tokens == 4 and rows[0].client == "127.0.0.1"


def test_model_made_title_replaces_the_first_message_title(browser_for: BrowserFor,
                                                           no_model_titles: WebUI) -> None:
    no_model_titles.model_titles = True
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=6)
    question = "Please explain in some detail how rainbows form in the sky after the rain has stopped falling."
    turn = send(browser, chat["id"], question)
    assert stored(browser, chat["id"])["title"] == "Please explain in some detail how rainbows form in the sky…"
    wait_status(browser, chat["id"], turn["assistant"]["id"])
    deadline = time.monotonic() + 60
    while (title := stored(browser, chat["id"])["title"]).endswith("…"):
        assert time.monotonic() < deadline, "no model-made title"
        time.sleep(0.2)
    assert 0 < len(title) <= 60 and "\n" not in title
