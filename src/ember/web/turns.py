"""Starting a chat turn: a new user message (sent or edited) and its answer, or a regenerated answer.

The messages are stored first (the answer as "streaming"), then the answer is generated in the background
(ember.web.generation). The prompt is the branch from the root to the user message, behind the chat's system
prompt and, when documents are involved, the passages retrieval found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from ember.db.chats import (
    FAILED,
    STREAMING,
    Chat,
    Message,
    add_messages,
    branch,
    chat_has_documents,
    chat_messages,
    get_chat,
)
from ember.db.ids import new_id
from ember.db.policies import ModelPolicy
from ember.db.sessions import WebUser
from ember.errors import BadRequest, MessageNotFound
from ember.web.chat_models import policy_for
from ember.web.generation import Turn, start, title_from_message
from ember.web.services import Retrieved, WebUI


@dataclass(frozen=True)
class Ask:
    """What the user asks for: a new user message under ``parent_id`` (content given), or a new answer to the
    user message ``parent_id`` (content None)."""

    chat_id: str
    parent_id: str | None
    content: str | None
    document_ids: list[str]
    collections: list[str]
    client: str | None


@dataclass(frozen=True)
class Started:
    user: Message | None
    assistant: Message


async def start_turn(ui: WebUI, user: WebUser, ask: Ask) -> Started:
    chat, tree = await anyio.to_thread.run_sync(_load, ui, user, ask.chat_id)
    question = _check_parent(tree, ask)
    retrieved = await _retrieve(ui, user, ask, question)
    asked = None
    if ask.content is not None:
        asked = Message(id=new_id(), chat_id=chat.id, parent_id=ask.parent_id, role="user", content=ask.content)
    answer = Message(id=new_id(), chat_id=chat.id, parent_id=asked.id if asked else ask.parent_id,
                     role="assistant", content="", status=STREAMING, model=chat.model,
                     citations=retrieved.citations if retrieved else None)
    path = branch([*tree, *([asked] if asked else [])], answer.parent_id)
    policy = await anyio.to_thread.run_sync(policy_for, ui.database, chat.model)
    body = chat_body(chat, path, retrieved, policy, privileged=user.role == "admin")
    first_title = title_from_message(asked.content) if asked and not chat.title and not tree else None
    new = [m for m in (asked, answer) if m is not None]
    await anyio.to_thread.run_sync(lambda: add_messages(ui.database, user.user_id, chat.id, new,
                                                        title=first_title))
    start(ui, Turn(user=user, client=ask.client, chat_id=chat.id, message_id=answer.id, body=body,
                   title_from=first_title))
    return Started(asked, answer)


def _load(ui: WebUI, user: WebUser, chat_id: str) -> tuple[Chat, list[Message]]:
    return get_chat(ui.database, user.user_id, chat_id), chat_messages(ui.database, user.user_id, chat_id)


def _check_parent(tree: list[Message], ask: Ask) -> str:
    """The parent must be in this chat: a new user message follows an answer (or starts the chat), a new
    answer follows a user message. Returns the question the answer is to (for retrieval)."""
    by_id = {m.id: m for m in tree}
    parent = by_id.get(ask.parent_id) if ask.parent_id is not None else None
    if ask.parent_id is not None and parent is None:
        raise MessageNotFound(ask.parent_id)
    if ask.content is not None:
        if parent is not None and parent.role != "assistant":
            raise BadRequest("a new message must follow an answer (or start the chat)")
        return ask.content
    if parent is None or parent.role != "user":
        raise BadRequest("only an answer can be regenerated")
    return parent.content


async def _retrieve(ui: WebUI, user: WebUser, ask: Ask, question: str) -> Retrieved | None:
    named = bool(ask.document_ids or ask.collections)
    if ui.retriever is None:
        if named:
            raise BadRequest("documents are not available on this server: no document retrieval is set up")
        return None
    if not named and not await anyio.to_thread.run_sync(chat_has_documents, ui.database, ask.chat_id):
        return None
    return await ui.retriever.context(user, ask.chat_id, question, ask.document_ids, ask.collections)


def chat_body(chat: Chat, path: list[Message], retrieved: Retrieved | None, policy: ModelPolicy | None, *,
              privileged: bool) -> dict[str, Any]:
    """The /api/chat body of one turn. Answers that failed without text are left out of the history."""
    messages: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in path
                                      if m.role == "user" or (m.content and m.status != FAILED)]
    system = chat.system if chat.system is not None else policy.system if policy else None
    context = retrieved.system_text if retrieved and retrieved.system_text else None
    if context:
        locked = policy is not None and "system" in policy.locked and not privileged
        if locked:  # the gateway would replace our system prompt: the passages go with the question instead
            messages[-1] = {**messages[-1], "content": f"{context}\n\n{messages[-1]['content']}"}
        else:
            system = f"{system}\n\n{context}" if system else context
    if system:
        messages.insert(0, {"role": "system", "content": system})
    body: dict[str, Any] = {"model": chat.model, "messages": messages, "stream": True}
    if chat.options:
        body["options"] = dict(chat.options)
    return body

