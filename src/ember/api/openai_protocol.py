"""OpenAI's /v1 wire format, requests: bodies into engine params (responses are in openai_shaping.py).

Everything here is pure (no I/O), so the mapping can be tested without a model. The routes in
``openai_routes.py`` only read the body, call the engine and move events through a shaper.

One rule runs through the request mapping: a field the client did not send is not defaulted. Ollama's
/v1 layer forces ``temperature`` and ``top_p`` to 1.0 when omitted, which silently overrides the
model's Modelfile defaults; Ember leaves them out so the Modelfile (then Ollama's defaults) apply.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from ember.api.fields import flag, model_field, optional_int, optional_str
from ember.durations import parse_keep_alive
from ember.engine.service import ChatParams, GenerateParams
from ember.errors import BadRequest
from ember.options import OPTION_TYPES, parse_options

IMAGE_URL_UNSUPPORTED = "image URLs are not currently supported, please use base64 encoded data instead"

_ROLES = ("system", "user", "assistant", "tool")
_ROLE_ALIASES = {"developer": "system"}  # newer OpenAI clients send "developer" where older ones send "system"
# OpenAI's effort levels onto Ember's think values; "minimal" and "xhigh" fold into the nearest level, as in Ollama.
_EFFORT: dict[str, bool | str] = {"none": False, "minimal": "low", "low": "low", "medium": "medium",
                                  "high": "high", "xhigh": "max", "max": "max"}


# -- parsed requests -------------------------------------------------------------------------------------

@dataclass
class ChatRequest:
    params: ChatParams
    stream: bool
    include_usage: bool


@dataclass
class CompletionRequest:
    params: GenerateParams
    stream: bool
    include_usage: bool


@dataclass
class EmbeddingRequest:
    model: str
    inputs: list[str]
    dimensions: int | None
    base64: bool
    options: dict[str, Any]
    keep_alive: float | None
    truncate: bool


def chat_request(body: dict[str, Any]) -> ChatRequest:
    _check_n(body)
    _reject_set(body, "logit_bias")
    stream, include_usage = _stream(body)
    params = ChatParams(
        model=model_field(body),
        messages=chat_messages(body.get("messages")),
        tools=_tools(body.get("tools"), body.get("tool_choice")),
        format=_response_format(body.get("response_format")),
        options=request_options(body),
        keep_alive=parse_keep_alive(body.get("keep_alive")),
        think=_think(body),
        truncate=flag(body, "truncate", True),
        logprobs=flag(body, "logprobs", False),
        top_logprobs=optional_int(body, "top_logprobs", 0),
    )
    return ChatRequest(params, stream, include_usage)


def completion_request(body: dict[str, Any]) -> CompletionRequest:
    _check_completion_fields(body)
    stream, include_usage = _stream(body)
    params = GenerateParams(
        model=model_field(body),
        prompt=_prompt(body.get("prompt")),
        suffix=optional_str(body, "suffix") or None,
        raw=flag(body, "raw", False),
        options=request_options(body),
        keep_alive=parse_keep_alive(body.get("keep_alive")),
        truncate=flag(body, "truncate", True),
        # the legacy API's logprobs is the number of alternatives per token; present means wanted
        logprobs=body.get("logprobs") not in (None, False),
        top_logprobs=0 if body.get("logprobs") is False else optional_int(body, "logprobs", 0),
    )
    return CompletionRequest(params, stream, include_usage)


def _check_completion_fields(body: dict[str, Any]) -> None:
    _check_n(body)
    if body.get("echo"):
        raise BadRequest("echo is not supported")
    _reject_set(body, "logit_bias")
    if body.get("best_of") not in (None, 1):
        raise BadRequest("best_of > 1 is not supported")


def embedding_request(body: dict[str, Any]) -> EmbeddingRequest:
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise BadRequest('encoding_format must be "float" or "base64"')
    return EmbeddingRequest(
        model=model_field(body),
        inputs=_embed_inputs(body.get("input")),
        dimensions=_dimensions(body.get("dimensions")),
        base64=encoding == "base64",
        options=request_options(body),
        keep_alive=parse_keep_alive(body.get("keep_alive")),
        truncate=flag(body, "truncate", True),
    )


# -- field readers -----------------------------------------------------------------------------------------

def _stream(body: dict[str, Any]) -> tuple[bool, bool]:
    """(stream, include_usage). /v1 defaults to non-streaming, unlike Ollama's own API."""
    stream = flag(body, "stream", False)
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not isinstance(options, dict):
        raise BadRequest("stream_options must be an object")
    return stream, stream and flag(options, "include_usage", False)


def _check_n(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is None or (n == 1 and not isinstance(n, bool)):
        return
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        raise BadRequest("n > 1 is not supported")
    raise BadRequest("n must be a positive integer")


def _reject_set(body: dict[str, Any], *keys: str) -> None:
    """Clients often send these as null, false or {}; only a real request for them is refused."""
    for key in keys:
        if body.get(key) not in (None, False, {}):
            raise BadRequest(f"{key} is not supported")


def request_options(body: dict[str, Any]) -> dict[str, Any]:
    """Ollama options from only the fields present: the ``options`` object (an Ember extra), then top-level
    names Ollama knows (OpenAI's temperature, top_p, seed, stop and penalties share Ollama's names, and
    ``extra_body={"num_ctx": ...}`` lands here too), then ``max_completion_tokens``/``max_tokens``."""
    options = parse_options(body.get("options"))
    options.update(parse_options({k: v for k, v in body.items() if k in OPTION_TYPES}))
    limit = _max_tokens(body)
    if limit is not None:
        options["num_predict"] = limit
    return options


def _max_tokens(body: dict[str, Any]) -> int | None:
    # max_completion_tokens replaced max_tokens in OpenAI's API; the newer name wins when both are sent.
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"{key} must be an integer")
        return value
    return None


def _think(body: dict[str, Any]) -> bool | str | None:
    effort = body.get("reasoning_effort")
    reasoning = body.get("reasoning")
    if effort is None and isinstance(reasoning, dict):
        effort = reasoning.get("effort")
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in _EFFORT:
        raise BadRequest('reasoning_effort must be one of "none", "minimal", "low", "medium", "high", "xhigh"')
    return _EFFORT[effort]


def _response_format(value: Any) -> Any:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema must be a JSON schema object")
        return schema
    raise BadRequest('response_format.type must be "text", "json_object" or "json_schema"')


def _prompt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    if isinstance(value, list) and len(value) > 1 and all(isinstance(v, str) for v in value):
        raise BadRequest("only one prompt per request is supported")
    if value is None:
        raise BadRequest("prompt is required")
    raise BadRequest("prompt must be a string (token arrays are not supported)")


def _embed_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    if value == []:
        raise BadRequest("invalid input")
    raise BadRequest("invalid input: expected a string or a list of strings (token arrays are not supported)")


def _dimensions(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest("dimensions must be a positive integer")
    return value


# -- messages ------------------------------------------------------------------------------------------------

def chat_messages(value: Any) -> list[dict[str, Any]]:
    """OpenAI messages as Ollama messages (the shape ChatParams takes)."""
    if not isinstance(value, list):
        raise BadRequest("messages must be a list")
    if not value:
        raise BadRequest("[] is too short - 'messages'")
    names: dict[str, str] = {}  # tool_call_id -> function name, filled from assistant messages as we go
    return [_message(raw, i, names) for i, raw in enumerate(value)]


def _message(raw: Any, index: int, names: dict[str, str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRequest(f"messages[{index}] must be an object")
    role = raw.get("role")
    role = _ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
    if role not in _ROLES:
        raise BadRequest(f"messages[{index}].role must be one of system, developer, user, assistant, tool")
    text, images = _content(raw.get("content"), index)
    message: dict[str, Any] = {"role": role, "content": text}
    if images:
        message["images"] = images
    if role == "assistant":
        _assistant_fields(raw, message, index, names)
    elif role == "tool":
        _tool_fields(raw, message, names)
    return message


def _content(value: Any, index: int) -> tuple[str, list[str]]:
    """Text and base64 images from a string or a list of content parts."""
    if value is None:
        return "", []
    if isinstance(value, str):
        return value, []
    if not isinstance(value, list):
        raise BadRequest(f"messages[{index}].content must be a string or a list of content parts")
    texts: list[str] = []
    images: list[str] = []
    for part in value:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise BadRequest(f"messages[{index}].content text parts need a string text")
            texts.append(part["text"])
        elif kind == "image_url":
            images.append(_image(part.get("image_url")))
        elif kind != "refusal":  # an assistant's earlier refusal carries nothing the model needs
            raise BadRequest(f"messages[{index}].content has an unsupported part: {kind!r}")
    return "\n".join(texts), images


def _image(value: Any) -> str:
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise BadRequest("invalid image input")
    if url.lower().startswith(("http://", "https://")):
        raise BadRequest(IMAGE_URL_UNSUPPORTED)
    header, comma, data = url.partition(",")
    if not (header.startswith("data:") and header.endswith(";base64") and comma):
        raise BadRequest("invalid image input: expected a data:<type>;base64,<data> URL")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("invalid image input: illegal base64 data") from None
    return data


def _assistant_fields(raw: dict[str, Any], message: dict[str, Any], index: int, names: dict[str, str]) -> None:
    reasoning = raw.get("reasoning") or raw.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        message["thinking"] = reasoning
    calls = raw.get("tool_calls")
    if calls:
        message["tool_calls"] = _assistant_calls(calls, index, names)


def _assistant_calls(value: Any, index: int, names: dict[str, str]) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise BadRequest(f"messages[{index}].tool_calls must be a list")
    calls = []
    for position, call in enumerate(value):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest(f"messages[{index}].tool_calls entries need function.name")
        entry: dict[str, Any] = {"function": {"index": position, "name": function["name"],
                                              "arguments": _arguments(function.get("arguments"), index)}}
        call_id = call.get("id")
        if isinstance(call_id, str) and call_id:
            entry["id"] = call_id
            names[call_id] = function["name"]
        calls.append(entry)
    return calls


def _arguments(value: Any, index: int) -> dict[str, Any]:
    """OpenAI sends arguments as a JSON string; templates and Ollama's API want the object."""
    if value in (None, ""):
        return {}
    if isinstance(value, dict):  # lenient: some clients send the object itself
        return value
    parsed = None
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
    if not isinstance(parsed, dict):
        raise BadRequest(f"messages[{index}].tool_calls function.arguments must be a JSON object string")
    return parsed


def _tool_fields(raw: dict[str, Any], message: dict[str, Any], names: dict[str, str]) -> None:
    call_id = raw.get("tool_call_id")
    if isinstance(call_id, str) and call_id:
        message["tool_call_id"] = call_id
    name = raw.get("name")
    if not (isinstance(name, str) and name) and isinstance(call_id, str):
        name = names.get(call_id)  # templates want the function name, which OpenAI only sends on the call
    if name:
        message["tool_name"] = name


# -- tools -----------------------------------------------------------------------------------------------

def _tools(value: Any, choice: Any) -> list[dict[str, Any]]:
    tools = _tool_list(value)
    if choice is None or choice == "auto":
        return tools
    if choice == "none":
        return []  # the model never sees the tools, so it cannot call them
    if not tools:
        raise BadRequest("tool_choice is only allowed when tools are specified")
    if choice == "required":
        return tools  # not grammar-forced: the model is offered the tools and may still answer in text
    name = _named_choice(choice)
    chosen = [t for t in tools if t["function"]["name"] == name]
    if not chosen:
        raise BadRequest(f'tool_choice names function "{name}", which is not in tools')
    return chosen


def _tool_list(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest("tools must be a list")
    for tool in value:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise BadRequest('tools entries must be objects with type "function"')
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise BadRequest("tools entries need function.name")
    return list(value)


def _named_choice(choice: Any) -> str:
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise BadRequest('tool_choice must be "none", "auto", "required" or '
                         '{"type": "function", "function": {"name": ...}}')
    return name
