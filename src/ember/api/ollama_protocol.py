"""Ollama wire format: request validation into engine params, and engine events into response JSON."""

from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime
from typing import Any

from ember.api.fields import flag, model_field, optional_int, optional_str
from ember.api.logprobs import ollama_logprobs
from ember.durations import parse_keep_alive
from ember.engine.service import ChatParams, Delta, Event, Finished, GenerateParams, Started, ToolCalls
from ember.errors import BadRequest
from ember.options import parse_options

_THINK_LEVELS = ("low", "medium", "high", "max")
_ROLES = ("system", "user", "assistant", "tool")


def now_utc() -> str:
    """RFC 3339 UTC with microseconds; called per streamed chunk, so the seconds part is cached."""
    now = time.time()
    second = int(now)
    if second != _second_cache[0]:
        _second_cache[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_second_cache[1]}.{int((now - second) * 1e6):06d}Z"


_second_cache: list[Any] = [-1, ""]


def local_time(value: datetime | float) -> str:
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(min(value, 253402210800.0)).astimezone()
    return value.astimezone().isoformat()


# -- field readers -------------------------------------------------------------------------------------

def stream_flag(body: dict[str, Any]) -> bool:
    return flag(body, "stream", True)


def _format(body: dict[str, Any]) -> Any:
    value = body.get("format")
    if value in (None, ""):
        return None
    if value == "json" or isinstance(value, dict):
        return value
    raise BadRequest('format must be "json" or a JSON schema object')


def _think(body: dict[str, Any]) -> bool | str | None:
    value = body.get("think")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _THINK_LEVELS:
        return value
    raise BadRequest('think must be true, false, "low", "medium", "high" or "max"')


def _images(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest("images must be a list of base64 strings")
    for image in value:
        try:
            base64.b64decode(image, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("illegal base64 data in images") from None
    return list(value)


def _options(body: dict[str, Any]) -> dict[str, Any]:
    return parse_options(body.get("options"))


def _messages(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest("messages must be a list")
    return [_message(m, i) for i, m in enumerate(value)]


def _message(raw: Any, index: int) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRequest(f"messages[{index}] must be an object")
    role = raw.get("role")
    if not isinstance(role, str) or role.lower() not in _ROLES:
        raise BadRequest(f"messages[{index}].role must be one of system, user, assistant, tool")
    content = raw.get("content") or ""
    if not isinstance(content, str):
        raise BadRequest(f"messages[{index}].content must be a string")
    message: dict[str, Any] = {"role": role.lower(), "content": content}
    for key in ("thinking", "tool_name", "tool_call_id"):
        if isinstance(raw.get(key), str) and raw[key]:
            message[key] = raw[key]
    if raw.get("images"):
        message["images"] = _images(raw["images"])
    if raw.get("tool_calls"):
        message["tool_calls"] = _tool_calls(raw["tool_calls"], index)
    return message


def _tool_calls(value: Any, index: int) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise BadRequest(f"messages[{index}].tool_calls must be a list")
    calls = []
    for call in value:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest(f"messages[{index}].tool_calls entries need function.name")
        arguments = function.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise BadRequest(f"messages[{index}].tool_calls function.arguments must be an object")
        calls.append({"function": {"name": function["name"], "arguments": arguments}})
    return calls


def _tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise BadRequest("tools must be a list of tool objects")
    return list(value)


def _context(value: Any) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise BadRequest("context must be a list of integers")
    return list(value)


def generate_params(body: dict[str, Any]) -> GenerateParams:
    return GenerateParams(
        model=model_field(body),
        prompt=optional_str(body, "prompt", "") or "",
        suffix=optional_str(body, "suffix"),
        system=optional_str(body, "system"),
        template=optional_str(body, "template"),
        raw=flag(body, "raw", False),
        context=_context(body.get("context")),
        images=_images(body.get("images")),
        format=_format(body),
        options=_options(body),
        keep_alive=parse_keep_alive(body.get("keep_alive")),
        think=_think(body),
        truncate=flag(body, "truncate", True),
        logprobs=flag(body, "logprobs", False),
        top_logprobs=optional_int(body, "top_logprobs", 0),
        shift=flag(body, "shift", True),
    )


def chat_params(body: dict[str, Any]) -> ChatParams:
    return ChatParams(
        model=model_field(body),
        messages=_messages(body.get("messages")),
        tools=_tools(body.get("tools")),
        format=_format(body),
        options=_options(body),
        keep_alive=parse_keep_alive(body.get("keep_alive")),
        think=_think(body),
        truncate=flag(body, "truncate", True),
        logprobs=flag(body, "logprobs", False),
        top_logprobs=optional_int(body, "top_logprobs", 0),
        shift=flag(body, "shift", True),
    )


def embed_inputs(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadRequest("invalid input type")


def dimensions_field(body: dict[str, Any]) -> int | None:
    value = body.get("dimensions")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest("dimensions must be a positive integer")
    return value


# -- response shaping ----------------------------------------------------------------------------------

class ChunkShaper:
    """Turns engine events into Ollama's streaming chunks for /api/generate or /api/chat."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def chunk(self, model: str, event: Event) -> dict[str, Any] | None:
        if isinstance(event, Started):
            return None
        head: dict[str, Any] = {"model": model, "created_at": now_utc()}
        if isinstance(event, Delta):
            chunk = {**head, **self._body(event.content, event.thinking, None), "done": False}
            if event.logprobs:
                chunk["logprobs"] = ollama_logprobs(event.logprobs)
            return chunk
        if isinstance(event, ToolCalls):
            return {**head, **self._body("", "", event.calls), "done": False}
        assert isinstance(event, Finished)
        return {**head, **self._body("", "", None), **final_fields(event)}

    def _body(self, content: str, thinking: str, calls: list[dict[str, Any]] | None) -> dict[str, Any]:
        if self.kind == "chat":
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = calls
            return {"message": message}
        body: dict[str, Any] = {"response": content}
        if thinking:
            body["thinking"] = thinking
        if calls:
            body["tool_calls"] = calls
        return body


def final_fields(event: Finished) -> dict[str, Any]:
    fields: dict[str, Any] = {"done": True, "done_reason": event.done_reason}
    if event.context is not None:
        fields["context"] = event.context
    fields.update(event.stats())
    if event.prompt_cache_count:
        fields["prompt_cache_count"] = event.prompt_cache_count
    if event.truncated:
        fields["truncated"] = True
    if event.closed_early:
        fields["closed_early"] = True  # Ember's: the format answer was closed early to fit num_predict
    return fields


def merge_chunks(kind: str, chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streaming response: one object with the concatenated text and the final fields."""
    final = dict(chunks[-1])
    logprobs = [entry for c in chunks for entry in c.get("logprobs", [])]
    if logprobs:
        final["logprobs"] = logprobs
    if kind == "chat":
        content = "".join(c["message"]["content"] for c in chunks)
        thinking = "".join(c["message"].get("thinking", "") for c in chunks)
        calls = [call for c in chunks for call in c["message"].get("tool_calls", [])]
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            message["thinking"] = thinking
        if calls:
            message["tool_calls"] = calls
        final["message"] = message
    else:
        final["response"] = "".join(c["response"] for c in chunks)
        thinking = "".join(c.get("thinking", "") for c in chunks)
        if thinking:
            final["thinking"] = thinking
        calls = [call for c in chunks for call in c.get("tool_calls", [])]
        if calls:
            final["tool_calls"] = calls
    return final
