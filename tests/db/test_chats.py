"""The chats repository on SQLite and PostgreSQL: ownership in every query, search, the tree, progress writes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ember.db import Database
from ember.db.chats import (
    Message,
    add_messages,
    branch,
    chat_messages,
    create_chat,
    delete_chat,
    fail_abandoned,
    finish_message,
    get_chat,
    get_message,
    import_chat,
    list_chats,
    read_message,
    request_stop,
    save_progress,
    set_title_if,
    update_chat,
)
from ember.db.ids import new_id
from ember.db.tables import ChunkRow, DocumentRow, utcnow
from ember.db.users import create_user
from ember.errors import ChatNotFound, MessageNotFound


def _users(db: Database) -> tuple[int, int]:
    return create_user(db, "ann", "password-1234", "user").id, create_user(db, "bob", "password-1234", "user").id


def _turn(chat_id: str, parent: str | None, question: str, answer: str = "",
          status: str = "done") -> list[Message]:
    asked = Message(id=new_id(), chat_id=chat_id, parent_id=parent, role="user", content=question)
    return [asked, Message(id=new_id(), chat_id=chat_id, parent_id=asked.id, role="assistant", content=answer,
                           status=status, model="m")]


def test_another_users_chat_and_messages_are_not_found(db: Database) -> None:
    ann, bob = _users(db)
    chat = create_chat(db, ann, model="m", options={"num_predict": 3})
    asked, answered = _turn(chat.id, None, "hi", "hello")
    add_messages(db, ann, chat.id, [asked, answered], title="hi")
    assert get_chat(db, ann, chat.id).leaf_id == answered.id and get_chat(db, ann, chat.id).title == "hi"
    for attempt in (lambda: get_chat(db, bob, chat.id), lambda: chat_messages(db, bob, chat.id),
                    lambda: update_chat(db, bob, chat.id, {"title": "x"}), lambda: delete_chat(db, bob, chat.id),
                    lambda: add_messages(db, bob, chat.id, _turn(chat.id, None, "x"))):
        with pytest.raises(ChatNotFound):
            attempt()
    for message_attempt in (lambda: get_message(db, bob, answered.id), lambda: request_stop(db, bob, answered.id)):
        with pytest.raises(MessageNotFound):
            message_attempt()
    assert read_message(db, answered.id) is not None and not read_message(db, answered.id).stop_requested  # type: ignore[union-attr]
    other = create_chat(db, bob, model="m")
    with pytest.raises(MessageNotFound):  # a leaf or parent from someone else's chat
        update_chat(db, bob, other.id, {"leaf_id": answered.id})
    with pytest.raises(MessageNotFound):
        add_messages(db, bob, other.id, _turn(other.id, answered.id, "x"))
    assert [c.id for c in list_chats(db, bob)] == [other.id]


def test_search_matches_titles_and_contents_literally(db: Database) -> None:
    ann, bob = _users(db)
    zebras = create_chat(db, ann, model="m", title="Zebras")
    add_messages(db, ann, zebras.id, _turn(zebras.id, None, "stripes at 100%_off", "ok"))
    giraffes = create_chat(db, ann, model="m", title="Giraffes")
    create_chat(db, bob, model="m", title="zebras too")
    assert [c.id for c in list_chats(db, ann, "zebra")] == [zebras.id]
    assert [c.id for c in list_chats(db, ann, "100%_OFF")] == [zebras.id]
    assert list_chats(db, ann, "0_o") == [] and list_chats(db, ann, "a%e") == []
    assert {c.id for c in list_chats(db, ann)} == {zebras.id, giraffes.id}


def test_progress_stop_and_finish(db: Database) -> None:
    ann, _ = _users(db)
    chat = create_chat(db, ann, model="m")
    asked, answer = _turn(chat.id, None, "q", status="streaming")
    add_messages(db, ann, chat.id, [asked, answer])
    assert save_progress(db, answer.id, "Hel", None) is False
    request_stop(db, ann, answer.id)
    assert save_progress(db, answer.id, "Hello", "hmm") is True
    finished = finish_message(db, answer.id, status="stopped", content="Hello", thinking="hmm",
                              stats={"eval_count": 2})
    assert finished is not None and (finished.status, finished.content, finished.stats) == ("stopped", "Hello",
                                                                                           {"eval_count": 2})
    save_progress(db, answer.id, "Hel", None)  # a late store never overwrites the final text
    assert read_message(db, answer.id).content == "Hello"  # type: ignore[union-attr]


def test_abandoned_answers_are_failed_only_when_stale(db: Database) -> None:
    ann, _ = _users(db)
    chat = create_chat(db, ann, model="m")
    asked, answer = _turn(chat.id, None, "q", status="streaming")
    add_messages(db, ann, chat.id, [asked, answer])
    assert not fail_abandoned(db, answer.id, utcnow() - timedelta(seconds=30))
    assert fail_abandoned(db, answer.id, utcnow() + timedelta(seconds=1))
    assert read_message(db, answer.id).status == "failed"  # type: ignore[union-attr]


def test_tree_branches_and_leaf_navigation(db: Database) -> None:
    ann, _ = _users(db)
    chat = create_chat(db, ann, model="m")
    first = _turn(chat.id, None, "q1", "a1")
    add_messages(db, ann, chat.id, first)
    regenerated = Message(id=new_id(), chat_id=chat.id, parent_id=first[0].id, role="assistant", content="a1'")
    add_messages(db, ann, chat.id, [regenerated])
    follow_up = _turn(chat.id, regenerated.id, "q2", "a2")
    add_messages(db, ann, chat.id, follow_up)
    tree = chat_messages(db, ann, chat.id)
    assert [m.content for m in branch(tree, get_chat(db, ann, chat.id).leaf_id)] == ["q1", "a1'", "q2", "a2"]
    update_chat(db, ann, chat.id, {"leaf_id": first[1].id})
    assert [m.content for m in branch(tree, get_chat(db, ann, chat.id).leaf_id)] == ["q1", "a1"]
    assert set_title_if(db, chat.id, expected="", title="Made") and not set_title_if(db, chat.id, expected="",
                                                                                      title="Again")
    assert get_chat(db, ann, chat.id).title == "Made"


def test_delete_takes_messages_documents_and_chunks(db: Database) -> None:
    ann, _ = _users(db)
    chat = create_chat(db, ann, model="m")
    add_messages(db, ann, chat.id, _turn(chat.id, None, "q", "a"))
    document_id = new_id()
    with db.session() as session:
        session.add(DocumentRow(id=document_id, user_id=ann, chat_id=chat.id, name="n.txt", media_type="text/plain",
                                size=1, sha256="0" * 64, status="ready"))
        session.flush()
        session.add(ChunkRow(document_id=document_id, ordinal=0, text="t"))
    delete_chat(db, ann, chat.id)
    with db.reading() as session:
        assert session.get(DocumentRow, document_id) is None
        assert session.query(ChunkRow).filter(ChunkRow.document_id == document_id).count() == 0
    with pytest.raises(ChatNotFound):
        get_chat(db, ann, chat.id)


def test_import_makes_new_ids_and_keeps_the_tree(db: Database) -> None:
    ann, _ = _users(db)
    template = create_chat(db, ann, model="m", title="Original", system="sys")
    messages = _turn("x", None, "q", "a")
    imported = import_chat(db, ann, template.__class__(**{**template.__dict__, "leaf_id": messages[1].id}),
                           messages)
    copy = chat_messages(db, ann, imported.id)
    assert imported.id != template.id and imported.title == "Original" and imported.system == "sys"
    assert {m.id for m in copy}.isdisjoint({m.id for m in messages})
    assert [m.content for m in branch(copy, imported.leaf_id)] == ["q", "a"]
