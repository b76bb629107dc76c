"""Typed readers for JSON request fields, shared by the Ollama and OpenAI layers: each bad type is a 400."""

from __future__ import annotations

from typing import Any

from ember.errors import BadRequest


def optional_str(body: dict[str, Any], key: str, default: str | None = None) -> str | None:
    value = body.get(key, default)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{key} must be true or false")
    return value


def optional_int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{key} must be an integer")
    return value


def model_field(body: dict[str, Any]) -> str:
    """``model`` (or Ollama's legacy ``name``): required, a string."""
    name = body.get("model") or body.get("name") or ""
    if not isinstance(name, str):
        raise BadRequest("model must be a string")
    if not name:
        raise BadRequest("model is required")
    return name
