"""OpenAI's /v1 wire format, responses: engine events into OpenAI JSON and SSE chunks (pure, no I/O)."""

from __future__ import annotations

import base64
import json
import secrets
import struct
import time
from typing import Any

from ember.api.logprobs import openai_chat_logprobs, openai_completion_logprobs
from ember.engine.messages import TokenLogprob
from ember.engine.service import Delta, Embeddings, Event, Finished, ToolCalls
from ember.errors import RunnerError
from ember.store import LocalModel

FINGERPRINT = "fp_ember"
SSE_DONE = b"data: [DONE]\n\n"


# -- response shaping ------------------------------------------------------------------------------------------

def usage(finished: Finished) -> dict[str, Any]:
    return {
        "prompt_tokens": finished.prompt_eval_count,
        "completion_tokens": finished.eval_count,
        "total_tokens": finished.prompt_eval_count + finished.eval_count,
        "prompt_tokens_details": {"cached_tokens": finished.prompt_cache_count},
    }


def finish_reason(finished: Finished, called_tools: bool) -> str:
    if called_tools:
        return "tool_calls"
    return "length" if finished.done_reason == "length" else "stop"


def closed_early(finished: Finished) -> dict[str, bool]:
    """Ember's extra choice field, present only when a format answer was closed early to fit the budget."""
    return {"closed_early": True} if finished.closed_early else {}


def _call_id(call: dict[str, Any]) -> str:
    found = call.get("id")
    return found if isinstance(found, str) and found else f"call_{secrets.token_hex(8)}"


def _function(call: dict[str, Any]) -> dict[str, str]:
    function = call["function"]
    arguments = json.dumps(function.get("arguments") or {}, ensure_ascii=False, separators=(",", ":"))
    return {"name": function["name"], "arguments": arguments}


def message_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Engine (Ollama-shaped) calls as an OpenAI message's tool_calls: arguments become a JSON string."""
    return [{"id": _call_id(c), "type": "function", "function": _function(c)} for c in calls]


def delta_tool_calls(calls: list[dict[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    """Stream form: each call whole in one delta (name and complete arguments), numbered by ``index``."""
    return [{"index": start + i, "id": _call_id(c), "type": "function", "function": _function(c)}
            for i, c in enumerate(calls)]


class Shaper:
    """Engine events into one OpenAI response object or into stream chunks.

    ``feed`` both remembers the event (for ``response``) and returns the chunks to stream for it, so the
    streaming and non-streaming paths cannot drift apart.
    """

    object_name = ""
    chunk_object_name = ""
    id_prefix = ""

    def __init__(self, model: str, include_usage: bool = False) -> None:
        self.id = f"{self.id_prefix}-{secrets.token_hex(12)}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.finished: Finished | None = None

    def opening(self) -> list[dict[str, Any]]:
        return []

    def feed(self, event: Event) -> list[dict[str, Any]]:
        raise NotImplementedError

    def response(self) -> dict[str, Any]:
        raise NotImplementedError

    def _envelope(self, name: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": name, "created": self.created, "model": self.model,
                "system_fingerprint": FINGERPRINT, "choices": choices}

    def _chunk(self, choice: dict[str, Any]) -> dict[str, Any]:
        chunk = self._envelope(self.chunk_object_name, [{"index": 0, "logprobs": None, **choice}])
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does: only the extra last chunk carries numbers
        return chunk

    def _closing(self, finished: Finished, reason: str, last: dict[str, Any]) -> list[dict[str, Any]]:
        self.finished = finished
        chunks = [self._chunk({**last, "finish_reason": reason, **closed_early(finished)})]
        if self.include_usage:
            chunks.append({**self._envelope(self.chunk_object_name, []), "usage": usage(finished)})
        return chunks

    def _final(self) -> Finished:
        if self.finished is None:
            raise RunnerError("generation ended without a final event")
        return self.finished


class ChatShaper(Shaper):
    object_name = "chat.completion"
    chunk_object_name = "chat.completion.chunk"
    id_prefix = "chatcmpl"

    def __init__(self, model: str, include_usage: bool = False) -> None:
        super().__init__(model, include_usage)
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.logprobs: list[TokenLogprob] | None = None  # None until a token with logprobs arrives

    def opening(self) -> list[dict[str, Any]]:
        # OpenAI's first chunk carries only the role; sending it at once also gives the client its first byte.
        return [self._chunk({"delta": {"role": "assistant", "content": ""}, "finish_reason": None})]

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, Delta):
            return self._delta(event)
        if isinstance(event, ToolCalls):
            start = len(self.calls)
            self.calls.extend(event.calls)
            return [self._chunk({"delta": {"tool_calls": delta_tool_calls(event.calls, start)},
                                 "finish_reason": None})]
        if isinstance(event, Finished):
            return self._closing(event, finish_reason(event, bool(self.calls)), {"delta": {}})
        return []

    def _delta(self, event: Delta) -> list[dict[str, Any]]:
        self.content.append(event.content)
        self.reasoning.append(event.thinking)
        delta: dict[str, Any] = {}
        if event.content:
            delta["content"] = event.content
        if event.thinking:
            delta["reasoning"] = event.thinking  # Ollama's non-standard field for thinking text
        choice: dict[str, Any] = {"delta": delta, "finish_reason": None}
        if event.logprobs:
            self.logprobs = self.logprobs or []
            self.logprobs.extend(event.logprobs)
            choice["logprobs"] = openai_chat_logprobs(event.logprobs)
        return [self._chunk(choice)] if delta else []

    def response(self) -> dict[str, Any]:
        finished = self._final()
        content = "".join(self.content)
        # OpenAI sends null content when the answer is only tool calls.
        message: dict[str, Any] = {"role": "assistant", "content": content or (None if self.calls else "")}
        reasoning = "".join(self.reasoning)
        if reasoning:
            message["reasoning"] = reasoning
        if self.calls:
            message["tool_calls"] = message_tool_calls(self.calls)
        logprobs = openai_chat_logprobs(self.logprobs) if self.logprobs is not None else None
        choice = {"index": 0, "message": message, "logprobs": logprobs,
                  "finish_reason": finish_reason(finished, bool(self.calls)), **closed_early(finished)}
        return {**self._envelope(self.object_name, [choice]), "usage": usage(finished)}


class CompletionShaper(Shaper):
    object_name = "text_completion"
    chunk_object_name = "text_completion"
    id_prefix = "cmpl"

    def __init__(self, model: str, include_usage: bool = False) -> None:
        super().__init__(model, include_usage)
        self.text: list[str] = []
        self.logprobs: list[TokenLogprob] | None = None
        self.offset = 0

    def feed(self, event: Event) -> list[dict[str, Any]]:
        if isinstance(event, Delta) and event.content:
            self.text.append(event.content)
            choice: dict[str, Any] = {"text": event.content, "finish_reason": None}
            if event.logprobs:
                self.logprobs = self.logprobs or []
                self.logprobs.extend(event.logprobs)
                choice["logprobs"] = openai_completion_logprobs(event.logprobs, self.offset)
            self.offset += len(event.content)
            return [self._chunk(choice)]
        if isinstance(event, Finished):
            return self._closing(event, finish_reason(event, False), {"text": ""})
        return []  # /v1/completions has no field for thinking text or tool calls

    def response(self) -> dict[str, Any]:
        finished = self._final()
        logprobs = openai_completion_logprobs(self.logprobs, 0) if self.logprobs is not None else None
        choice = {"index": 0, "text": "".join(self.text), "logprobs": logprobs,
                  "finish_reason": finish_reason(finished, False), **closed_early(finished)}
        return {**self._envelope(self.object_name, [choice]), "usage": usage(finished)}


def embedding_response(result: Embeddings, as_base64: bool) -> dict[str, Any]:
    data = [{"object": "embedding", "index": i, "embedding": encode_vector(v) if as_base64 else v}
            for i, v in enumerate(result.vectors)]
    return {"object": "list", "data": data, "model": result.model,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}}


def encode_vector(vector: list[float]) -> str:
    """OpenAI's base64 form: the little-endian float32 bytes of the vector."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def model_object(model: LocalModel) -> dict[str, Any]:
    return {"id": model.name.display, "object": "model", "created": int(model.modified_at.timestamp()),
            "owned_by": model.name.namespace}


def model_list(models: list[LocalModel]) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(m) for m in models]}  # [] when empty, never null


def sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
