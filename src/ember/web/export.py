"""Chat export (JSON: the whole tree, versioned; Markdown: the branch shown) and import of the JSON export.

The JSON format is ``{"ember_chat_export": 1, "title", "model", "system", "options", "leaf_id",
"created_at", "messages": [...]}`` with messages in the chat API's shape, parents before children. Import
checks everything strictly and stores the chat under new ids.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ember.db.chats import DONE, ROLES, STATUSES, STOPPED, STREAMING, Chat, Message, branch
from ember.db.tables import utcnow
from ember.errors import BadRequest
from ember.web.chat_json import MAX_CONTENT_CHARS, MAX_SYSTEM_CHARS, MAX_TITLE_CHARS, public_message
from ember.web.chat_models import checked_model, checked_options

FORMAT_KEY = "ember_chat_export"
VERSION = 1
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_IMPORT_MESSAGES = 5000
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # ids in a file are only labels: new ones are made


def to_json(chat: Chat, messages: list[Message]) -> dict[str, Any]:
    return {FORMAT_KEY: VERSION, "title": chat.title, "model": chat.model, "system": chat.system,
            "options": chat.options, "leaf_id": chat.leaf_id, "created_at": chat.created_at.isoformat(),
            "messages": [public_message(m) for m in _parents_first(messages)]}


def to_markdown(chat: Chat, messages: list[Message]) -> str:
    lines = [f"# {chat.title or 'Chat'}", "", f"Model: `{chat.model}`", ""]
    if chat.system:
        lines += ["## System", "", chat.system, ""]
    for message in branch(messages, chat.leaf_id):
        lines += [f"## {'You' if message.role == 'user' else 'Assistant'}", "", message.content, ""]
        if message.status not in (DONE, STREAMING) or message.error:
            lines += [f"*({message.status}{': ' + message.error if message.error else ''})*", ""]
    return "\n".join(lines)


def filename(chat: Chat, extension: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", chat.title).strip("-.")[:60] or "chat"
    return f"{stem}.{extension}"


def from_json(data: dict[str, Any]) -> tuple[Chat, list[Message]]:
    """The chat and messages of an export, checked; BadRequest says what is wrong."""
    if data.get(FORMAT_KEY) != VERSION:
        raise BadRequest(f'not an Ember chat export: expected "{FORMAT_KEY}": {VERSION}')
    messages_data = data.get("messages")
    if not isinstance(messages_data, list) or len(messages_data) > MAX_IMPORT_MESSAGES:
        raise BadRequest(f'"messages" must be a list of at most {MAX_IMPORT_MESSAGES} messages')
    messages: list[Message] = []
    seen: set[str] = set()
    for index, item in enumerate(messages_data):
        message = _message(item, index, seen)
        seen.add(message.id)
        messages.append(message)
    leaf_id = data.get("leaf_id")
    if leaf_id is not None and leaf_id not in seen:
        raise BadRequest('"leaf_id" must be the id of one of the messages')
    chat = Chat(id="", user_id=0, title=_text(data, "title", MAX_TITLE_CHARS) or "", model=checked_model(
        data.get("model")), system=_text(data, "system", MAX_SYSTEM_CHARS), options=checked_options(
        data.get("options")), leaf_id=leaf_id, created_at=_time(data.get("created_at")), updated_at=utcnow())
    return chat, messages


def _message(item: Any, index: int, seen: set[str]) -> Message:
    where = f"message {index + 1}"
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object")
    message_id, parent_id = item.get("id"), item.get("parent_id")
    if not isinstance(message_id, str) or not ID_PATTERN.match(message_id) or message_id in seen:
        raise BadRequest(f"{where}: missing, malformed or repeated id")
    if parent_id is not None and parent_id not in seen:
        raise BadRequest(f"{where}: parent_id must name a message that comes before it")
    role, status = item.get("role"), item.get("status", DONE)
    if role not in ROLES:
        raise BadRequest(f'{where}: role must be "user" or "assistant"')
    if status not in STATUSES:
        raise BadRequest(f"{where}: unknown status {status!r}")
    citations, stats = item.get("citations"), item.get("stats")
    if citations is not None and not isinstance(citations, list):
        raise BadRequest(f"{where}: citations must be a list")
    if stats is not None and not isinstance(stats, dict):
        raise BadRequest(f"{where}: stats must be an object")
    model = _text(item, "model", 255, where)
    return Message(id=message_id, chat_id="", parent_id=parent_id, role=role,
                   content=_text(item, "content", MAX_CONTENT_CHARS, where) or "",
                   thinking=_text(item, "thinking", MAX_CONTENT_CHARS, where),
                   status=STOPPED if status == STREAMING else status,  # nothing generates an imported answer
                   error=_text(item, "error", 10_000, where), citations=citations, stats=stats, model=model,
                   created_at=_time(item.get("created_at")), updated_at=utcnow())


def _text(data: dict[str, Any], name: str, limit: int, where: str = "the chat") -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequest(f"{where}: {name} must be a string of at most {limit} characters")
    return value


def _time(value: Any) -> datetime:
    if value is None:
        return utcnow()
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise BadRequest(f"invalid time {str(value)[:40]!r}: expected ISO 8601") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=utcnow().tzinfo)


def _parents_first(messages: list[Message]) -> list[Message]:
    placed: set[str] = set()
    ordered: list[Message] = []
    remaining = list(messages)
    while remaining:
        ready = [m for m in remaining if m.parent_id is None or m.parent_id in placed]
        if not ready:  # a parent outside the chat: keep them anyway, as roots
            ready = remaining[:1]
        for message in ready:
            placed.add(message.id)
            ordered.append(message)
        remaining = [m for m in remaining if m.id not in placed]
    return ordered
