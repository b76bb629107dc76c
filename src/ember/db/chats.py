"""Chats and their message trees, always read and written on behalf of one user.

Every query that takes a chat or message id also names the user, so another user's id finds nothing and
answers like a missing one (ChatNotFound / MessageNotFound). Messages form a tree through ``parent_id``: an
edit or a regeneration is a new sibling, and ``chats.leaf_id`` names the last message of the branch shown.

Search is a case-insensitive LIKE over titles and message contents: a scan of the user's rows, fine for the
thousands of messages one person writes; a full-text index would be the next step if it ever is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from ember.db.database import Database
from ember.db.ids import looks_like_id, new_id
from ember.db.tables import ChatRow, DocumentRow, MessageRow, utcnow
from ember.errors import BadRequest, ChatNotFound, MessageNotFound

STREAMING, DONE, STOPPED, FAILED = "streaming", "done", "stopped", "failed"
STATUSES = frozenset({STREAMING, DONE, STOPPED, FAILED})
ROLES = frozenset({"user", "assistant"})
CHAT_FIELDS = frozenset({"title", "model", "system", "options", "leaf_id"})


@dataclass(frozen=True)
class Chat:
    id: str
    user_id: int
    title: str
    model: str
    system: str | None
    options: dict[str, Any]
    leaf_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: ChatRow) -> Chat:
        return cls(id=row.id, user_id=row.user_id, title=row.title, model=row.model, system=row.system,
                   options=dict(row.options or {}), leaf_id=row.leaf_id, created_at=row.created_at,
                   updated_at=row.updated_at)


@dataclass(frozen=True)
class Message:
    id: str
    chat_id: str
    parent_id: str | None
    role: str
    content: str
    thinking: str | None = None
    model: str | None = None
    status: str = DONE
    stop_requested: bool = False
    error: str | None = None
    citations: list[Any] | None = None
    stats: dict[str, Any] | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    @classmethod
    def from_row(cls, row: MessageRow) -> Message:
        return cls(id=row.id, chat_id=row.chat_id, parent_id=row.parent_id, role=row.role, content=row.content,
                   thinking=row.thinking, model=row.model, status=row.status, stop_requested=row.stop_requested,
                   error=row.error, citations=row.citations, stats=row.stats, created_at=row.created_at,
                   updated_at=row.updated_at)


# --- chats -----------------------------------------------------------------------------------------------


def create_chat(db: Database, user_id: int, *, model: str, system: str | None = None,
                options: dict[str, Any] | None = None, title: str = "") -> Chat:
    now = utcnow()
    row = ChatRow(id=new_id(), user_id=user_id, title=title, model=model, system=system, options=options or {},
                  leaf_id=None, created_at=now, updated_at=now)
    with db.session() as session:
        session.add(row)
    return Chat.from_row(row)


def list_chats(db: Database, user_id: int, query: str | None = None, limit: int = 500) -> list[Chat]:
    """The user's chats, most recently active first; ``query`` matches titles and message contents."""
    statement = select(ChatRow).where(ChatRow.user_id == user_id)
    if query:
        pattern = "%" + _escape_like(query) + "%"
        in_messages = exists().where(MessageRow.chat_id == ChatRow.id,
                                     MessageRow.content.ilike(pattern, escape="\\"))
        statement = statement.where(or_(ChatRow.title.ilike(pattern, escape="\\"), in_messages))
    statement = statement.order_by(ChatRow.updated_at.desc(), ChatRow.id).limit(limit)
    with db.reading() as session:
        return [Chat.from_row(row) for row in session.scalars(statement)]


def get_chat(db: Database, user_id: int, chat_id: str) -> Chat:
    with db.reading() as session:
        return Chat.from_row(_owned_chat(session, user_id, chat_id))


def update_chat(db: Database, user_id: int, chat_id: str, changes: dict[str, Any]) -> Chat:
    """Change the named fields (title, model, system, options, leaf_id); a leaf must be one of the chat's."""
    unknown = set(changes) - CHAT_FIELDS
    if unknown:
        raise BadRequest(f"unknown chat fields: {', '.join(sorted(unknown))}")
    with db.session() as session:
        row = _owned_chat(session, user_id, chat_id)
        if changes.get("leaf_id") is not None:
            _message_in_chat(session, chat_id, changes["leaf_id"])
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_at = utcnow()
        session.flush()
        return Chat.from_row(row)


def delete_chat(db: Database, user_id: int, chat_id: str) -> None:
    """The chat, its messages and its documents (their chunks follow by foreign key)."""
    with db.session() as session:
        _owned_chat(session, user_id, chat_id)
        session.execute(delete(MessageRow).where(MessageRow.chat_id == chat_id))
        session.execute(delete(DocumentRow).where(DocumentRow.chat_id == chat_id))
        session.execute(delete(ChatRow).where(ChatRow.id == chat_id))


def chat_has_documents(db: Database, chat_id: str) -> bool:
    with db.reading() as session:
        return session.scalar(select(exists().where(DocumentRow.chat_id == chat_id))) or False


# --- messages --------------------------------------------------------------------------------------------


def chat_messages(db: Database, user_id: int, chat_id: str) -> list[Message]:
    """The whole tree, oldest first."""
    with db.reading() as session:
        _owned_chat(session, user_id, chat_id)
        rows = session.scalars(select(MessageRow).where(MessageRow.chat_id == chat_id)
                               .order_by(MessageRow.created_at, MessageRow.id))
        return [Message.from_row(row) for row in rows]


def get_message(db: Database, user_id: int, message_id: str) -> Message:
    if not looks_like_id(message_id):
        raise MessageNotFound(message_id)
    with db.reading() as session:
        row = session.scalar(select(MessageRow).join(ChatRow, ChatRow.id == MessageRow.chat_id)
                             .where(MessageRow.id == message_id, ChatRow.user_id == user_id))
        if row is None:
            raise MessageNotFound(message_id)
        return Message.from_row(row)


def read_message(db: Database, message_id: str) -> Message | None:
    """A message by id without an owner check: for the generation that writes it and its followers, which
    checked the owner when they began."""
    with db.reading() as session:
        row = session.get(MessageRow, message_id)
        return Message.from_row(row) if row is not None else None


def add_messages(db: Database, user_id: int, chat_id: str, messages: Sequence[Message], *,
                 title: str | None = None) -> Chat:
    """Store ``messages`` (a user turn and its answer, or an answer alone); the last becomes the chat's leaf.
    A parent must be a message of the same chat. ``title`` is set if the chat has none yet."""
    with db.session() as session:
        chat = _owned_chat(session, user_id, chat_id)
        known = {m.id for m in messages}
        for message in messages:
            if message.parent_id is not None and message.parent_id not in known:
                _message_in_chat(session, chat_id, message.parent_id)
            session.add(_row(message, chat_id))
        chat.leaf_id = messages[-1].id
        if title and not chat.title:
            chat.title = title
        chat.updated_at = utcnow()
        session.flush()
        return Chat.from_row(chat)


def save_progress(db: Database, message_id: str, content: str, thinking: str | None) -> bool:
    """Store the text so far; True if someone asked to stop this answer (perhaps on another replica)."""
    with db.session() as session:
        # Only while streaming: a late store must never overwrite the final text.
        session.execute(update(MessageRow).where(MessageRow.id == message_id, MessageRow.status == STREAMING)
                        .values(content=content, thinking=thinking, updated_at=utcnow()))
        return bool(session.scalar(select(MessageRow.stop_requested).where(MessageRow.id == message_id)))


def finish_message(db: Database, message_id: str, *, status: str, content: str, thinking: str | None,
                   error: str | None = None, stats: dict[str, Any] | None = None) -> Message | None:
    now = utcnow()
    with db.session() as session:
        row = session.get(MessageRow, message_id)
        if row is None:  # the chat was deleted while it answered
            return None
        row.status, row.content, row.thinking, row.error, row.stats = status, content, thinking, error, stats
        row.updated_at = now
        session.execute(update(ChatRow).where(ChatRow.id == row.chat_id).values(updated_at=now))
        session.flush()
        return Message.from_row(row)


def fail_abandoned(db: Database, message_id: str, untouched_since: datetime) -> bool:
    """Mark a "streaming" message failed if its generator has not stored anything since ``untouched_since``
    (the replica generating it died); True if it did."""
    with db.session() as session:
        result = session.execute(update(MessageRow).where(
            MessageRow.id == message_id, MessageRow.status == STREAMING, MessageRow.updated_at < untouched_since)
            .values(status=FAILED, error="the server generating this answer stopped before it was done"))
        return bool(getattr(result, "rowcount", 0))


def request_stop(db: Database, user_id: int, message_id: str) -> Message:
    message = get_message(db, user_id, message_id)
    with db.session() as session:
        session.execute(update(MessageRow).where(MessageRow.id == message_id).values(stop_requested=True))
    return message


def set_title_if(db: Database, chat_id: str, *, expected: str, title: str) -> bool:
    """Replace the title only if it is still ``expected`` (the user may have renamed the chat meanwhile)."""
    with db.session() as session:
        result = session.execute(update(ChatRow).where(ChatRow.id == chat_id, ChatRow.title == expected)
                                 .values(title=title))
        return bool(getattr(result, "rowcount", 0))


def import_chat(db: Database, user_id: int, chat: Chat, messages: Sequence[Message]) -> Chat:
    """Store an imported chat under new ids; ``messages`` come parents first (checked by the caller)."""
    fresh = {m.id: new_id() for m in messages}
    now = utcnow()
    row = ChatRow(id=new_id(), user_id=user_id, title=chat.title, model=chat.model, system=chat.system,
                  options=chat.options, leaf_id=fresh.get(chat.leaf_id or ""), created_at=chat.created_at,
                  updated_at=now)
    with db.session() as session:
        session.add(row)
        session.flush()
        for message in messages:
            parent = fresh[message.parent_id] if message.parent_id is not None else None
            session.add(_row(message, row.id, id=fresh[message.id], parent_id=parent))
        session.flush()
        return Chat.from_row(row)


# --- the tree --------------------------------------------------------------------------------------------


def branch(messages: Iterable[Message], leaf_id: str | None) -> list[Message]:
    """The messages from the root to ``leaf_id``, in order (empty without a leaf)."""
    by_id = {m.id: m for m in messages}
    path: list[Message] = []
    current = by_id.get(leaf_id) if leaf_id else None
    while current is not None and len(path) <= len(by_id):
        path.append(current)
        current = by_id.get(current.parent_id) if current.parent_id else None
    path.reverse()
    return path


# --- helpers ---------------------------------------------------------------------------------------------


def _owned_chat(session: Session, user_id: int, chat_id: str) -> ChatRow:
    if not looks_like_id(chat_id):
        raise ChatNotFound(chat_id)
    row = session.scalar(select(ChatRow).where(ChatRow.id == chat_id, ChatRow.user_id == user_id))
    if row is None:
        raise ChatNotFound(chat_id)
    return row


def _message_in_chat(session: Session, chat_id: str, message_id: Any) -> MessageRow:
    if not looks_like_id(message_id):
        raise MessageNotFound(str(message_id))
    row = session.scalar(select(MessageRow).where(MessageRow.id == message_id, MessageRow.chat_id == chat_id))
    if row is None:
        raise MessageNotFound(message_id)
    return row


def _row(message: Message, chat_id: str, **replace: Any) -> MessageRow:
    values = {"id": message.id, "chat_id": chat_id, "parent_id": message.parent_id, "role": message.role,
              "content": message.content, "thinking": message.thinking, "model": message.model,
              "status": message.status, "stop_requested": False, "error": message.error,
              "citations": message.citations, "stats": message.stats, "created_at": message.created_at,
              "updated_at": message.updated_at, **replace}
    return MessageRow(**values)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
