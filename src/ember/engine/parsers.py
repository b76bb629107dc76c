"""Streaming parsers over generated text: reasoning between think tags, and tool calls.

Both hold back only text that may still turn out to be markup, so ordinary output streams unchanged.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def _partial_suffix(text: str, marker: str) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of ``marker``."""
    for k in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:k]):
            return k
    return 0


@dataclass
class ThinkingParser:
    """Splits ``<think>…</think>`` out of the output. ``in_thinking`` starts true for templates that open
    the think block themselves in the generation prompt."""

    in_thinking: bool = False
    _buffer: str = ""
    _seen_any: bool = False

    def feed(self, text: str) -> tuple[str, str]:
        """Returns (thinking, content) that is safe to emit now."""
        self._buffer += text
        thinking, content = [], []
        while self._buffer:
            if not self._seen_any and not self.in_thinking:
                stripped = self._buffer.lstrip()
                if THINK_OPEN.startswith(stripped) and len(stripped) < len(THINK_OPEN):
                    break  # might be the start of <think>
                if stripped.startswith(THINK_OPEN):
                    self._buffer = stripped[len(THINK_OPEN):]
                    self.in_thinking = True
                self._seen_any = True
                continue
            marker = THINK_CLOSE if self.in_thinking else None
            if marker is None:
                content.append(self._buffer)
                self._buffer = ""
                break
            at = self._buffer.find(marker)
            if at >= 0:
                thinking.append(self._buffer[:at])
                self._buffer = self._buffer[at + len(marker):].lstrip()
                self.in_thinking = False
                continue
            keep = _partial_suffix(self._buffer, marker)
            thinking.append(self._buffer[: len(self._buffer) - keep])
            self._buffer = self._buffer[len(self._buffer) - keep:]
            break
        return "".join(thinking), "".join(content)

    def flush(self) -> tuple[str, str]:
        rest, self._buffer = self._buffer, ""
        return (rest, "") if self.in_thinking else ("", rest)


_CALL_ID_ALPHABET = string.ascii_lowercase + string.digits
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_PREFIXES = ("<tool_call>", "[TOOL_CALLS]", "{", "[")


def new_call_id() -> str:
    return "call_" + "".join(secrets.choice(_CALL_ID_ALPHABET) for _ in range(8))


@dataclass
class ToolCallParser:
    """Recognises tool calls in the formats small local models emit:
    ``<tool_call>{json}</tool_call>`` (Hermes/Qwen), ``[TOOL_CALLS][...]`` (Mistral), or a bare JSON object or
    list of objects with ``name`` and ``arguments``/``parameters`` (Llama 3). Output that starts like one of
    these is held back until the end; anything else streams."""

    _buffer: str = ""
    _holding: bool | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def feed(self, text: str) -> str:
        if self._holding is False:
            return text
        self._buffer += text
        stripped = self._buffer.lstrip()
        if not stripped:
            return ""
        if any(stripped.startswith(p) or p.startswith(stripped) for p in _PREFIXES):
            self._holding = True
            return ""
        self._holding = False
        out, self._buffer = self._buffer, ""
        return out

    def flush(self) -> str:
        """Parse what was held back; returns leftover content (empty when it was all tool calls)."""
        text, self._buffer = self._buffer, ""
        if not self._holding:
            return text
        calls = parse_tool_calls(text)
        if calls is None:
            return text
        self.calls = calls
        return ""


def parse_tool_calls(text: str) -> list[dict[str, Any]] | None:
    """Tool calls in Ollama's shape (arguments as an object), or None if ``text`` is not tool calls."""
    stripped = text.strip()
    if stripped.startswith("<tool_call>"):
        payloads = [_load(m) for m in _TAGGED.findall(stripped)]
    elif stripped.startswith("[TOOL_CALLS]"):
        payloads = [_load(stripped[len("[TOOL_CALLS]"):])]
    else:
        payloads = [_load(stripped)]
    objects: list[Any] = []
    for payload in payloads:
        if payload is None:
            return None
        objects.extend(payload if isinstance(payload, list) else [payload])
    calls = [_as_call(obj, i) for i, obj in enumerate(objects)]
    if not calls or any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _as_call(obj: Any, index: int) -> dict[str, Any] | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):
        obj = obj["function"]
    name = obj.get("name")
    arguments = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(arguments, str):
        arguments = _load(arguments)
    if not isinstance(name, str) or not isinstance(arguments, dict):
        return None
    return {"id": new_call_id(), "function": {"index": index, "name": name, "arguments": arguments}}
