"""Ids of the web UI's rows (chats, messages, documents): random and URL-safe, so they say nothing about how
many rows exist or when they were made. Access is still checked on every query; an id is never a capability."""

from __future__ import annotations

import secrets

ID_CHARS = 22  # 16 random bytes in URL-safe base64


def new_id() -> str:
    return secrets.token_urlsafe(16)


def looks_like_id(value: object) -> bool:
    """Whether ``value`` could be one of our ids (cheap rejection of junk before any query)."""
    return (isinstance(value, str) and len(value) == ID_CHARS
            and all(c.isalnum() or c in "-_" for c in value))
