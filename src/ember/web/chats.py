"""The chat API under /ui/api: chats, messages, streams, Stop, branches, export and import, models.

Handlers are thin: who is asking (the session), what they sent (checked), then ember.db.chats or the turn
and stream modules. Every id is looked up together with the user, so another user's id is a 404.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ember.db import chats as repo
from ember.db.chats import STREAMING
from ember.db.sessions import WebUser
from ember.errors import BadRequest, MessageNotFound
from ember.web import export
from ember.web.chat_json import (
    MAX_CONTENT_CHARS,
    MAX_SYSTEM_CHARS,
    MAX_TITLE_CHARS,
    json_body,
    public_chat,
    public_message,
    string_list,
    text_field,
)
from ember.web.chat_models import check_locks, checked_model, checked_options, usable_models
from ember.web.services import WebUI, web
from ember.web.session import current_user
from ember.web.streams import follow
from ember.web.turns import Ask, start_turn

T = TypeVar("T")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"}


async def _db(fn: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(fn, *args)


async def _who(request: Request) -> tuple[WebUI, WebUser]:
    return web(request), await current_user(request)


# --- models and chats ------------------------------------------------------------------------------------


async def list_models(request: Request) -> Response:
    ui, user = await _who(request)
    return JSONResponse({"models": await usable_models(ui, user)})


async def list_chats(request: Request) -> Response:
    ui, user = await _who(request)
    query = request.query_params.get("q", "").strip()[:200] or None
    chats = await _db(repo.list_chats, ui.database, user.user_id, query)
    return JSONResponse({"chats": [public_chat(c) for c in chats]})


async def create_chat(request: Request) -> Response:
    ui, user = await _who(request)
    body = await json_body(request)
    model = checked_model(body.get("model"))
    system = text_field(body, "system", limit=MAX_SYSTEM_CHARS)
    options = checked_options(body.get("options"))
    await _db(check_locks, ui.database, user, model, system, options)
    chat = await anyio.to_thread.run_sync(lambda: repo.create_chat(ui.database, user.user_id, model=model,
                                                                   system=system, options=options))
    return JSONResponse(public_chat(chat), status_code=201)


async def get_chat(request: Request) -> Response:
    ui, user = await _who(request)
    chat_id = request.path_params["chat_id"]
    chat = await _db(repo.get_chat, ui.database, user.user_id, chat_id)
    messages = await _db(repo.chat_messages, ui.database, user.user_id, chat_id)
    return JSONResponse({**public_chat(chat), "messages": [_with_live_text(ui, m) for m in messages]})


async def update_chat(request: Request) -> Response:
    ui, user = await _who(request)
    chat_id = request.path_params["chat_id"]
    body = await json_body(request)
    chat = await _db(repo.get_chat, ui.database, user.user_id, chat_id)
    changes = _chat_changes(body)
    if {"model", "system", "options"} & set(changes):
        await _db(check_locks, ui.database, user, changes.get("model", chat.model),
                  changes.get("system", chat.system), changes.get("options", chat.options))
    updated = await _db(repo.update_chat, ui.database, user.user_id, chat_id, changes)
    return JSONResponse(public_chat(updated))


def _chat_changes(body: dict[str, Any]) -> dict[str, Any]:
    unknown = set(body) - repo.CHAT_FIELDS
    if unknown:
        raise BadRequest(f"unknown chat fields: {', '.join(sorted(unknown))}")
    changes: dict[str, Any] = {}
    if "title" in body:
        changes["title"] = " ".join((text_field(body, "title", limit=MAX_TITLE_CHARS) or "").split())
    if "model" in body:
        changes["model"] = checked_model(body["model"])
    if "system" in body:
        changes["system"] = text_field(body, "system", limit=MAX_SYSTEM_CHARS) or None
    if "options" in body:
        changes["options"] = checked_options(body["options"])
    if "leaf_id" in body:
        if not isinstance(body["leaf_id"], str):
            raise BadRequest('"leaf_id" must be the id of a message of this chat')
        changes["leaf_id"] = body["leaf_id"]
    return changes


async def delete_chat(request: Request) -> Response:
    ui, user = await _who(request)
    chat_id = request.path_params["chat_id"]
    for message in await _db(repo.chat_messages, ui.database, user.user_id, chat_id):
        if message.status == STREAMING:
            ui.generations.stop(message.id)
    await _db(repo.delete_chat, ui.database, user.user_id, chat_id)
    return Response(status_code=204)


# --- turns -----------------------------------------------------------------------------------------------


async def post_message(request: Request) -> Response:
    ui, user = await _who(request)
    chat_id = request.path_params["chat_id"]
    body = await json_body(request)
    content = text_field(body, "content", limit=MAX_CONTENT_CHARS, required=True, allow_empty=False)
    if "parent_id" in body:
        parent_id = body["parent_id"]
        if parent_id is not None and not isinstance(parent_id, str):
            raise BadRequest('"parent_id" must be a message id or null')
    else:
        parent_id = (await _db(repo.get_chat, ui.database, user.user_id, chat_id)).leaf_id
    ask = Ask(chat_id, parent_id, content, string_list(body, "document_ids"), string_list(body, "collections"),
              _client(request))
    started = await start_turn(ui, user, ask)
    assert started.user is not None
    return JSONResponse({"user": public_message(started.user), "assistant": public_message(started.assistant)},
                        status_code=201)


async def regenerate(request: Request) -> Response:
    ui, user = await _who(request)
    original = await _message_of_chat(ui, user, request)
    if original.role != "assistant":
        raise BadRequest("only an answer can be regenerated; edit a message of yours instead")
    started = await start_turn(ui, user, Ask(original.chat_id, original.parent_id, None, [], [], _client(request)))
    return JSONResponse({"assistant": public_message(started.assistant)}, status_code=201)


async def edit(request: Request) -> Response:
    ui, user = await _who(request)
    original = await _message_of_chat(ui, user, request)
    if original.role != "user":
        raise BadRequest("only your own messages can be edited; regenerate an answer instead")
    body = await json_body(request)
    content = text_field(body, "content", limit=MAX_CONTENT_CHARS, required=True, allow_empty=False)
    started = await start_turn(ui, user, Ask(original.chat_id, original.parent_id, content, [], [],
                                             _client(request)))
    assert started.user is not None
    return JSONResponse({"user": public_message(started.user), "assistant": public_message(started.assistant)},
                        status_code=201)


async def _message_of_chat(ui: WebUI, user: WebUser, request: Request) -> repo.Message:
    chat_id, message_id = request.path_params["chat_id"], request.path_params["message_id"]
    await _db(repo.get_chat, ui.database, user.user_id, chat_id)
    message = await _db(repo.get_message, ui.database, user.user_id, message_id)
    if message.chat_id != chat_id:
        raise MessageNotFound(message_id)
    return message


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


# --- streams and Stop ------------------------------------------------------------------------------------


async def stream(request: Request) -> Response:
    ui, user = await _who(request)
    message = await _db(repo.get_message, ui.database, user.user_id, request.path_params["message_id"])
    events = follow(ui.database, ui.generations, message, public_message)
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


async def stop(request: Request) -> Response:
    ui, user = await _who(request)
    message = await _db(repo.request_stop, ui.database, user.user_id, request.path_params["message_id"])
    ui.generations.stop(message.id)  # here: at once; on another replica: at its next store of the text
    return JSONResponse({"id": message.id, "stop_requested": True}, status_code=202)


def _with_live_text(ui: WebUI, message: repo.Message) -> dict[str, Any]:
    """A message as stored, with the text so far if this process is generating it (fresher than the store)."""
    shown = public_message(message)
    live = ui.generations.live.get(message.id)
    if live is not None and message.status == STREAMING:
        shown.update(content=live.content, thinking=live.thinking or None)
    return shown


# --- export and import -----------------------------------------------------------------------------------


async def export_chat(request: Request) -> Response:
    ui, user = await _who(request)
    chat_id = request.path_params["chat_id"]
    kind = request.query_params.get("format", "json")
    if kind not in ("json", "markdown"):
        raise BadRequest('format must be "json" or "markdown"')
    chat = await _db(repo.get_chat, ui.database, user.user_id, chat_id)
    messages = await _db(repo.chat_messages, ui.database, user.user_id, chat_id)
    if kind == "json":
        text = json.dumps(export.to_json(chat, messages), ensure_ascii=False, indent=1)
        media, name = "application/json", export.filename(chat, "json")
    else:
        text, media, name = export.to_markdown(chat, messages), "text/markdown", export.filename(chat, "md")
    return Response(text, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def import_chat(request: Request) -> Response:
    ui, user = await _who(request)
    body = await json_body(request, max_bytes=export.MAX_IMPORT_BYTES)
    chat, messages = export.from_json(body)
    await _db(check_locks, ui.database, user, chat.model, chat.system, chat.options)
    stored = await _db(repo.import_chat, ui.database, user.user_id, chat, messages)
    return JSONResponse(public_chat(stored), status_code=201)
