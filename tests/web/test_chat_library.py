"""Chat list, search, rename, delete, models with their policies, locked options, export and import."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from ember.db import Database
from ember.db.policies import ModelPolicy, delete_policy, set_policy
from tests.conftest import BUNDLED
from tests.web.chat_helpers import new_chat, send, stored, wait_status
from tests.web.harness import Browser

BrowserFor = Callable[[str], Browser]
pytestmark = pytest.mark.usefixtures("no_model_titles")


@pytest.fixture
def locked_temperature(web_db: Database) -> Iterator[ModelPolicy]:
    policy = ModelPolicy(model=BUNDLED, system="You are terse.", defaults={"temperature": 0.1, "num_ctx": 1024},
                         locked=frozenset({"temperature", "system"}))
    set_policy(web_db, policy)
    yield policy
    delete_policy(web_db, BUNDLED)


def test_models_lists_the_bundled_model_with_its_policy(browser_for: BrowserFor,
                                                         locked_temperature: ModelPolicy) -> None:
    models = browser_for("user").get("/ui/api/models").json()["models"]
    entry = next(m for m in models if m["name"] == BUNDLED)
    assert entry == {"name": BUNDLED, "defaults": {"temperature": 0.1, "num_ctx": 1024},
                     "locked": ["system", "temperature"], "system": "You are terse."}


def test_locked_options_cannot_be_saved_by_users(browser_for: BrowserFor, locked_temperature: ModelPolicy) -> None:
    user, admin = browser_for("user"), browser_for("admin")
    refused = user.post("/ui/api/chats", json={"model": BUNDLED, "options": {"temperature": 1.5}})
    assert refused.status_code == 403 and "temperature" in refused.json()["error"]
    assert "locked" in refused.json()["error"]
    system = user.post("/ui/api/chats", json={"model": BUNDLED, "system": "Be a pirate."})
    assert system.status_code == 403 and "system" in system.json()["error"]
    unlocked = user.post("/ui/api/chats", json={"model": BUNDLED, "options": {"num_predict": 4}})
    assert unlocked.status_code == 201
    chat = unlocked.json()
    patched = user.send("PATCH", f"/ui/api/chats/{chat['id']}", json={"options": {"temperature": 2}})
    assert patched.status_code == 403
    assert admin.post("/ui/api/chats", json={"model": BUNDLED, "options": {"temperature": 1.5}}).status_code == 201


def test_bad_chat_input_is_refused_clearly(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    for body, says in [({}, "model"), ({"model": ""}, "model"), ({"model": BUNDLED, "options": {"bogus": 1}},
                                                                   "unknown options: bogus"),
                       ({"model": BUNDLED, "options": {"temperature": "hot"}}, "temperature"),
                       ({"model": BUNDLED, "options": []}, "options")]:
        response = browser.post("/ui/api/chats", json=body)
        assert response.status_code == 400 and says in response.json()["error"], (body, response.text)
    chat = new_chat(browser)
    empty = browser.post(f"/ui/api/chats/{chat['id']}/messages", json={"content": "  "})
    assert empty.status_code == 400 and "content" in empty.json()["error"]
    named = browser.post(f"/ui/api/chats/{chat['id']}/messages", json={"content": "x", "document_ids": ["d"]})
    assert named.status_code == 404 and "document" in named.json()["error"]  # no such document
    assert stored(browser, chat["id"])["messages"] == []  # nothing stored for a refused turn
    unknown = browser.send("PATCH", f"/ui/api/chats/{chat['id']}", json={"colour": "red"})
    assert unknown.status_code == 400


def test_writes_need_the_csrf_token(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    chat = new_chat(browser)
    for method, url in [("POST", "/ui/api/chats"), ("PATCH", f"/ui/api/chats/{chat['id']}"),
                        ("DELETE", f"/ui/api/chats/{chat['id']}"), ("POST", f"/ui/api/chats/{chat['id']}/messages"),
                        ("POST", "/ui/api/chats/import")]:
        response = browser.client.request(method, url, json={"content": "x", "model": BUNDLED})
        assert response.status_code == 403 and "CSRF" in response.json()["error"], (method, url)
    assert stored(browser, chat["id"])["messages"] == []


def test_list_search_rename_and_delete(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    first = new_chat(browser, num_predict=4)
    turn = send(browser, first["id"], "Tell me about zebras_and_100% stripes.")
    wait_status(browser, first["id"], turn["assistant"]["id"])
    second = new_chat(browser, num_predict=4)
    browser.send("PATCH", f"/ui/api/chats/{second['id']}", json={"title": "  Giraffes   and necks "})

    listed = browser.get("/ui/api/chats").json()["chats"]
    assert [c["id"] for c in listed] == [second["id"], first["id"]]  # newest activity first
    assert listed[0]["title"] == "Giraffes and necks"
    assert [c["id"] for c in browser.get("/ui/api/chats", params={"q": "GIRAFFE"}).json()["chats"]] == [second["id"]]
    by_content = browser.get("/ui/api/chats", params={"q": "zebras_and_100%"}).json()["chats"]
    assert [c["id"] for c in by_content] == [first["id"]]
    assert browser.get("/ui/api/chats", params={"q": "a%e"}).json()["chats"] == []  # LIKE wildcards are literal

    assert browser.send("DELETE", f"/ui/api/chats/{first['id']}").status_code == 204
    assert browser.get(f"/ui/api/chats/{first['id']}").status_code == 404
    assert browser.get(f"/ui/api/messages/{turn['assistant']['id']}/stream").status_code == 404
    assert [c["id"] for c in browser.get("/ui/api/chats").json()["chats"]] == [second["id"]]


def test_export_and_import_round_trip(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=5, system="Answer briefly.")
    turn = send(browser, chat["id"], "What is 2 + 2?")
    wait_status(browser, chat["id"], turn["assistant"]["id"])
    again = browser.post(f"/ui/api/chats/{chat['id']}/messages/{turn['assistant']['id']}/regenerate").json()
    wait_status(browser, chat["id"], again["assistant"]["id"])
    original = stored(browser, chat["id"])

    exported = browser.get(f"/ui/api/chats/{chat['id']}/export", params={"format": "json"})
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    data = exported.json()
    assert data["ember_chat_export"] == 1 and len(data["messages"]) == 3

    imported = browser.post("/ui/api/chats/import", content=exported.content,
                            headers={"content-type": "application/json"})
    assert imported.status_code == 201, imported.text
    copy = stored(browser, imported.json()["id"])
    assert copy["id"] != chat["id"] and copy["title"] == original["title"] and copy["system"] == "Answer briefly."
    assert not {m["id"] for m in copy["messages"]} & {m["id"] for m in original["messages"]}

    def shape(tree: dict[str, object]) -> list[tuple[object, ...]]:
        messages = tree["messages"]
        assert isinstance(messages, list)
        index = {m["id"]: i for i, m in enumerate(messages)}
        return sorted((m["role"], m["content"], m["status"], index.get(m["parent_id"]),
                       m["id"] == tree["leaf_id"]) for m in messages)

    assert shape(copy) == shape(original)

    markdown = browser.get(f"/ui/api/chats/{chat['id']}/export", params={"format": "markdown"})
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "What is 2 + 2?" in markdown.text and again["assistant"]["id"] == original["leaf_id"]
    leaf = next(m for m in original["messages"] if m["id"] == original["leaf_id"])
    assert leaf["content"] in markdown.text and "## System" in markdown.text


@pytest.mark.parametrize(("change", "says"), [
    ({"ember_chat_export": 2}, "not an Ember chat export"),
    ({"messages": "many"}, "messages"),
    ({"messages": [{"id": "a", "parent_id": "b", "role": "user", "content": "x"}]}, "parent_id"),
    ({"messages": [{"id": "a", "role": "system", "content": "x"}]}, "role"),
    ({"messages": [{"id": "a", "role": "user", "content": 5}]}, "content"),
    ({"messages": [{"id": "a", "role": "user"}, {"id": "a", "role": "user"}]}, "id"),
    ({"leaf_id": "nope"}, "leaf_id"),
    ({"model": 3}, "model"),
])
def test_import_refuses_bad_files(browser_for: BrowserFor, change: dict[str, object], says: str) -> None:
    good = {"ember_chat_export": 1, "title": "t", "model": BUNDLED, "system": None, "options": {},
            "leaf_id": None, "messages": []}
    response = browser_for("user").post("/ui/api/chats/import", json={**good, **change})
    assert response.status_code == 400 and says in response.json()["error"], response.text


def test_import_refuses_huge_and_non_json_bodies(browser_for: BrowserFor) -> None:
    browser = browser_for("user")
    not_json = browser.post("/ui/api/chats/import", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
    huge = json.dumps({"ember_chat_export": 1, "pad": "x" * (21 * 1024 * 1024)}).encode()
    assert browser.post("/ui/api/chats/import", content=huge).status_code == 413
