"""The parts of a chat turn that need no engine to check: the prompt of a branch with retrieved passages,
titles, and what a retriever's answer (or refusal) does to a turn. The retriever here is a stand-in: the real
one (documents, embeddings) has its own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ember.db.chats import Chat, Message, branch
from ember.db.policies import ModelPolicy
from ember.db.sessions import WebUser
from ember.db.tables import utcnow
from ember.errors import DocumentIndexing
from ember.web import streams
from ember.web.generation import clean_title, title_from_message
from ember.web.services import Retrieved, WebUI
from ember.web.turns import chat_body
from tests.gateway.harness import RunningWeb
from tests.web.chat_helpers import new_chat, send, stored, wait_status
from tests.web.harness import Browser

NOW = utcnow()


def _chat(**fields: Any) -> Chat:
    values: dict[str, Any] = {"id": "c", "user_id": 1, "title": "", "model": "m", "system": None,
                              "options": {}, "leaf_id": None, "created_at": NOW, "updated_at": NOW, **fields}
    return Chat(**values)


def _msg(mid: str, parent: str | None, role: str, content: str, status: str = "done") -> Message:
    return Message(id=mid, chat_id="c", parent_id=parent, role=role, content=content, status=status)


TREE = [_msg("u1", None, "user", "Hi"), _msg("a1", "u1", "assistant", "Hello!"),
        _msg("a2", "u1", "assistant", "", status="failed"), _msg("u2", "a1", "user", "Weather?"),
        _msg("u3", "a2", "user", "Again?")]
PASSAGES = Retrieved("[1] It rains in Bergen.", [{"n": 1, "document_id": "d", "name": "bergen.txt",
                                                   "ordinal": 0, "snippet": "It rains"}])


def test_the_prompt_is_the_branch_behind_the_system_prompt_and_passages() -> None:
    body = chat_body(_chat(system="Be brief.", options={"num_predict": 9}), branch(TREE, "u2"), PASSAGES, None,
                     privileged=False)
    assert body == {"model": "m", "stream": True, "options": {"num_predict": 9}, "messages": [
        {"role": "system", "content": "Be brief.\n\n[1] It rains in Bergen."},
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Weather?"}]}


def test_a_failed_empty_answer_is_left_out_and_the_policy_system_prompt_is_the_base() -> None:
    policy = ModelPolicy(model="m", system="Policy says hi.")
    body = chat_body(_chat(), branch(TREE, "u3"), PASSAGES, policy, privileged=False)
    assert body["messages"] == [{"role": "system", "content": "Policy says hi.\n\n[1] It rains in Bergen."},
                                {"role": "user", "content": "Hi"}, {"role": "user", "content": "Again?"}]


def test_passages_go_with_the_question_when_the_system_prompt_is_locked() -> None:
    policy = ModelPolicy(model="m", system="Locked.", locked=frozenset({"system"}))
    body = chat_body(_chat(), branch(TREE, "u2"), PASSAGES, policy, privileged=False)
    assert body["messages"][0] == {"role": "system", "content": "Locked."}
    assert body["messages"][-1] == {"role": "user", "content": "[1] It rains in Bergen.\n\nWeather?"}
    admin = chat_body(_chat(), branch(TREE, "u2"), PASSAGES, policy, privileged=True)
    assert admin["messages"][0]["content"] == "Locked.\n\n[1] It rains in Bergen."


def test_branch_follows_parents_and_ignores_a_missing_leaf() -> None:
    assert [m.id for m in branch(TREE, "u3")] == ["u1", "a2", "u3"]
    assert branch(TREE, None) == [] and branch(TREE, "gone") == []


@pytest.mark.parametrize(("written", "title"), [
    ('"Rainbows After Rain"', "Rainbows After Rain"), ("Title: **How rainbows form**\nMore text", "How rainbows form"),
    ("   \n\n", ""), ("# Sky colours.", "Sky colours"),
])
def test_model_titles_are_cleaned(written: str, title: str) -> None:
    assert clean_title(written) == title


def test_first_message_titles_are_one_line_and_cut_at_a_word() -> None:
    assert title_from_message("  Hello\n  world ") == "Hello world"
    long = title_from_message("word " * 30)
    assert long.endswith("…") and len(long) <= 61 and "  " not in long


class StandIn:
    """Answers like the documents retriever: passages, or DocumentIndexing while a document is indexed."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, list[str], list[str]]] = []
        self.indexing = False

    async def context(self, user: WebUser, chat_id: str, query: str, document_ids: list[str],
                      collections: list[str]) -> Retrieved:
        self.asked.append((chat_id, query, document_ids, collections))
        if self.indexing:
            raise DocumentIndexing("notes.txt")
        return PASSAGES


@pytest.fixture
def retriever(ui: RunningWeb) -> Iterator[StandIn]:
    web_ui: WebUI = ui.app.state.web
    stand_in, wired = StandIn(), web_ui.retriever
    web_ui.retriever, web_ui.model_titles = stand_in, False
    yield stand_in
    web_ui.retriever, web_ui.model_titles = wired, True


def test_named_documents_are_retrieved_and_cited(browser_for: Callable[[str], Browser], retriever: StandIn) -> None:
    browser = browser_for("user")
    chat = new_chat(browser, num_predict=4)
    turn = send(browser, chat["id"], "Does it rain?", document_ids=["d"], collections=["weather"])
    assert retriever.asked == [(chat["id"], "Does it rain?", ["d"], ["weather"])]
    assert turn["assistant"]["citations"] == PASSAGES.citations
    done = wait_status(browser, chat["id"], turn["assistant"]["id"])
    assert done["status"] == "done" and done["citations"] == PASSAGES.citations

    retriever.indexing = True
    refused = browser.post(f"/ui/api/chats/{chat['id']}/messages", json={"content": "And now?",
                                                                         "document_ids": ["d"]})
    assert refused.status_code == 409 and "still being indexed" in refused.json()["error"]
    assert len(stored(browser, chat["id"])["messages"]) == 2  # the refused turn left nothing behind


async def test_followers_get_heartbeats_while_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "HEARTBEAT_S", 0.05)
    live = streams.Live("m")
    snapshot, queue = live.subscribe()
    events = streams._from_memory(queue)
    assert snapshot == {"content": "", "thinking": "", "status": "streaming"}
    assert await anext(events) == streams.HEARTBEAT
    live.add("Hel", "")
    assert await anext(events) == streams.sse("delta", {"content": "Hel"})
    live.ended()
    with pytest.raises(StopAsyncIteration):
        await anext(events)


async def test_a_follower_arriving_as_the_answer_ends_is_not_left_waiting() -> None:
    live = streams.Live("m")
    live.add("Done.", "")
    live.ended()
    snapshot, queue = live.subscribe()
    assert snapshot["content"] == "Done." and queue.get_nowait() is streams.END
