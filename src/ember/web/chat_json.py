"""The chat API's JSON: chats and messages as the UI sees them, and checked reading of request bodies."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ember.db.chats import Chat, Message
from ember.edge import read_body
from ember.errors import BadRequest
from ember.gateway.bodies import parse_object
from ember.web.services import web

MAX_CONTENT_CHARS = 200_000  # one message; the model's context is far smaller anyway
MAX_TITLE_CHARS = 200
MAX_SYSTEM_CHARS = 50_000


def public_chat(chat: Chat) -> dict[str, Any]:
    return {"id": chat.id, "title": chat.title, "model": chat.model, "system": chat.system,
            "options": chat.options, "leaf_id": chat.leaf_id, "created_at": chat.created_at.isoformat(),
            "updated_at": chat.updated_at.isoformat()}


def public_message(message: Message) -> dict[str, Any]:
    return {"id": message.id, "parent_id": message.parent_id, "role": message.role, "content": message.content,
            "thinking": message.thinking, "status": message.status, "error": message.error,
            "citations": message.citations, "stats": message.stats, "model": message.model,
            "created_at": message.created_at.isoformat()}


async def json_body(request: Request, *, max_bytes: int | None = None) -> dict[str, Any]:
    settings = web(request).settings
    raw = await read_body(request, max_bytes or settings.max_body_bytes, settings.body_timeout)
    return parse_object(raw)


def text_field(body: dict[str, Any], name: str, *, limit: int, required: bool = False,
               allow_empty: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f'"{name}" is required')
        return None
    if not isinstance(value, str):
        raise BadRequest(f'"{name}" must be a string')
    if not allow_empty and not value.strip():
        raise BadRequest(f'"{name}" must not be empty')
    if len(value) > limit:
        raise BadRequest(f'"{name}" is too long (at most {limit} characters)')
    return value


def string_list(body: dict[str, Any], name: str, *, limit: int = 100) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > limit:
        raise BadRequest(f'"{name}" must be a list of at most {limit} strings')
    return list(value)
