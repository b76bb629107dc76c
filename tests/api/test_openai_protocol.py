"""OpenAI /v1 mapping and shaping as pure functions: no server, no model.

Tool-call shaping is checked with recorded engine events, since no tool-capable model is available offline.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from ember.api import openai_protocol as proto
from ember.api import openai_shaping as shaping
from ember.engine.service import Delta, Event, Finished, Started, ToolCalls
from ember.errors import BadRequest

USER = [{"role": "user", "content": "hi"}]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}

# What the engine yields for a model answering with two tool calls (recorded from the ToolCallParser).
RECORDED_TOOL_EVENTS: list[Event] = [
    Started("qwen3:0.6b", prompt_tokens=151),
    ToolCalls([
        {"id": "call_k3x9f2ab", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}}},
        {"id": "call_p0q1r2s3", "function": {"index": 1, "name": "get_time",
                                              "arguments": {"zone": "Asia/Tokyo", "24h": True}}},
    ]),
    Finished("qwen3:0.6b", "stop", prompt_eval_count=151, eval_count=42, prompt_cache_count=100),
]
RECORDED_TEXT_EVENTS: list[Event] = [
    Started("smollm2:135m", prompt_tokens=30),
    Delta(content="Par"),
    Delta(thinking="hmm"),
    Delta(content="is"),
    Finished("smollm2:135m", "length", prompt_eval_count=30, eval_count=3),
]


def chat(**body: Any) -> proto.ChatRequest:
    return proto.chat_request({"model": "m", "messages": USER, **body})


def bad(message: str, fn: Any, *args: Any) -> None:
    with pytest.raises(BadRequest) as info:
        fn(*args)
    assert message in info.value.message


def feed_all(shaper: shaping.Shaper, events: list[Event]) -> list[dict[str, Any]]:
    chunks = list(shaper.opening())
    for event in events:
        if not isinstance(event, Started):
            chunks.extend(shaper.feed(event))
    return chunks


# -- request mapping -------------------------------------------------------------------------------------------

def test_omitted_fields_are_not_defaulted() -> None:
    req = chat()
    assert req.params.options == {}
    assert "temperature" not in req.params.options and "top_p" not in req.params.options
    assert req.params.format is None and req.params.think is None and req.params.tools == []
    assert req.params.keep_alive is None and req.stream is False and req.include_usage is False


def test_sampling_fields_map_to_ollama_options() -> None:
    req = chat(temperature=0.2, top_p=0.5, seed=7, stop="END", presence_penalty=0.1, frequency_penalty=0.3,
               max_tokens=12)
    assert req.params.options == {"temperature": 0.2, "top_p": 0.5, "seed": 7, "stop": ["END"],
                                  "presence_penalty": 0.1, "frequency_penalty": 0.3, "num_predict": 12}
    assert chat(stop=["a", "b"]).params.options["stop"] == ["a", "b"]
    assert chat(max_completion_tokens=5, max_tokens=9).params.options["num_predict"] == 5
    assert chat(temperature=None, stop=None).params.options == {}
    with pytest.raises(BadRequest, match="max_tokens must be an integer"):
        chat(max_tokens="ten")


def test_ember_extras_set_context_keep_alive_and_options() -> None:
    req = chat(num_ctx=1024, top_k=5, keep_alive="10m", options={"num_ctx": 512, "repeat_penalty": 1.2},
               mirostat=1, truncate=False)
    # Top-level names win over the options object; legacy names are dropped as on the native API.
    assert req.params.options == {"num_ctx": 1024, "repeat_penalty": 1.2, "top_k": 5}
    assert req.params.keep_alive == 600.0 and req.params.truncate is False


def test_stream_options() -> None:
    assert (chat(stream=True).stream, chat(stream=True).include_usage) == (True, False)
    req = chat(stream=True, stream_options={"include_usage": True})
    assert req.stream and req.include_usage
    assert chat(stream=False, stream_options={"include_usage": True}).include_usage is False


def test_logprobs_fields_map_to_the_engine() -> None:
    params = chat(logprobs=True, top_logprobs=5).params
    assert (params.logprobs, params.top_logprobs) == (True, 5)
    assert not chat(logprobs=False, top_logprobs=None).params.logprobs
    with pytest.raises(BadRequest, match="top_logprobs must be an integer"):
        chat(logprobs=True, top_logprobs="5")


def test_n_other_than_one_is_refused() -> None:
    assert chat(n=1).params.model == "m"
    with pytest.raises(BadRequest, match="n > 1 is not supported"):
        chat(n=2)
    with pytest.raises(BadRequest, match="n must be a positive integer"):
        chat(n=0)


def test_unsupported_fields_are_refused_only_when_really_set() -> None:
    chat(logprobs=False, logit_bias={}, top_logprobs=None, user="u", parallel_tool_calls=True)
    with pytest.raises(BadRequest, match="logit_bias is not supported"):
        chat(logit_bias={"50256": -100})


def test_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert chat(response_format={"type": "text"}).params.format is None
    assert chat(response_format={"type": "json_object"}).params.format == "json"
    req = chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert req.params.format == schema
    with pytest.raises(BadRequest, match="json_schema.schema"):
        chat(response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    with pytest.raises(BadRequest, match="response_format.type"):
        chat(response_format={"type": "xml"})


def test_reasoning_effort_maps_to_think() -> None:
    assert chat(reasoning_effort="none").params.think is False
    assert [chat(reasoning_effort=e).params.think for e in ("low", "medium", "high")] == ["low", "medium", "high"]
    assert chat(reasoning_effort="minimal").params.think == "low"
    assert chat(reasoning={"effort": "high"}).params.think == "high"
    with pytest.raises(BadRequest, match="reasoning_effort"):
        chat(reasoning_effort="extreme")


def test_messages_roles_and_content_parts() -> None:
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                                     {"type": "text", "text": "this?"}]},
        {"role": "assistant", "content": None, "reasoning_content": "look closely"},
    ]
    out = proto.chat_messages(messages)
    assert out[0] == {"role": "system", "content": "be brief"}
    assert out[1] == {"role": "user", "content": "what is\nthis?", "images": [PNG]}
    assert out[2] == {"role": "assistant", "content": "", "thinking": "look closely"}


def test_message_errors() -> None:
    bad("[] is too short - 'messages'", proto.chat_messages, [])
    bad("messages must be a list", proto.chat_messages, None)
    bad("role must be one of", proto.chat_messages, [{"role": "wizard", "content": "x"}])
    url = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}]
    bad(proto.IMAGE_URL_UNSUPPORTED, proto.chat_messages, url)
    broken = [{"role": "user", "content": [{"type": "image_url", "image_url": "data:image/png;base64,@@@"}]}]
    bad("illegal base64", proto.chat_messages, broken)
    audio = [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]
    bad("unsupported part: 'input_audio'", proto.chat_messages, audio)


def test_assistant_tool_calls_and_tool_results() -> None:
    messages = [
        {"role": "user", "content": "weather in Tokyo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Tokyo"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "name": "clock", "content": "noon"},
        {"role": "tool", "tool_call_id": "call_unknown", "content": "?"},
    ]
    out = proto.chat_messages(messages)
    assert out[1]["tool_calls"] == [
        {"id": "call_1", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}}},
        {"id": "call_2", "function": {"index": 1, "name": "get_time", "arguments": {}}},
    ]
    assert out[2] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1", "tool_name": "get_weather"}
    assert out[3]["tool_name"] == "clock"  # an explicit name wins
    assert out[4] == {"role": "tool", "content": "?", "tool_call_id": "call_unknown"}
    broken = [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{not json"}}]}]
    bad("must be a JSON object string", proto.chat_messages, broken)


def test_tool_choice() -> None:
    tools = [WEATHER, TIME]
    assert chat(tools=tools).params.tools == tools
    assert chat(tools=tools, tool_choice="auto").params.tools == tools
    assert chat(tools=tools, tool_choice="none").params.tools == []
    assert chat(tools=tools, tool_choice="required").params.tools == tools
    named = {"type": "function", "function": {"name": "get_time"}}
    assert chat(tools=tools, tool_choice=named).params.tools == [TIME]
    with pytest.raises(BadRequest, match='names function "nope"'):
        chat(tools=tools, tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(BadRequest, match="only allowed when tools are specified"):
        chat(tool_choice="required")
    with pytest.raises(BadRequest, match="tool_choice must be"):
        chat(tools=tools, tool_choice="sometimes")
    with pytest.raises(BadRequest, match='type "function"'):
        chat(tools=[{"type": "web_search"}])


def test_completion_request() -> None:
    req = proto.completion_request({"model": "m", "prompt": ["Once"], "suffix": "end", "max_tokens": 4,
                                    "echo": False, "logprobs": None, "stream": True,
                                    "stream_options": {"include_usage": True}})
    assert (req.params.prompt, req.params.suffix, req.params.options) == ("Once", "end", {"num_predict": 4})
    assert req.stream and req.include_usage and req.params.raw is False
    for body, message in [
        ({"prompt": ["a", "b"]}, "only one prompt"),
        ({"prompt": [1, 2, 3]}, "token arrays are not supported"),
        ({}, "prompt is required"),
        ({"prompt": "x", "echo": True}, "echo is not supported"),
        ({"prompt": "x", "logprobs": "2"}, "logprobs must be an integer"),
        ({"prompt": "x", "n": 3}, "n > 1 is not supported"),
        ({"prompt": "x", "best_of": 2}, "best_of > 1 is not supported"),
    ]:
        bad(message, proto.completion_request, {"model": "m", **body})


def test_embedding_request() -> None:
    req = proto.embedding_request({"model": "m", "input": "hello", "encoding_format": "base64", "dimensions": 8,
                                   "num_ctx": 256})
    assert (req.inputs, req.base64, req.dimensions, req.options) == (["hello"], True, 8, {"num_ctx": 256})
    assert proto.embedding_request({"model": "m", "input": ["a", "b"]}).inputs == ["a", "b"]
    bad("invalid input", proto.embedding_request, {"model": "m", "input": []})
    bad("token arrays", proto.embedding_request, {"model": "m", "input": [[1, 2]]})
    bad("encoding_format", proto.embedding_request, {"model": "m", "input": "x", "encoding_format": "int8"})
    bad("model is required", proto.embedding_request, {"input": "x"})


# -- response shaping --------------------------------------------------------------------------------------------

def test_tool_calls_non_stream_message() -> None:
    shaper = shaping.ChatShaper("qwen3:0.6b")
    feed_all(shaper, RECORDED_TOOL_EVENTS)
    body = shaper.response()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None and choice["message"]["role"] == "assistant"
    calls = choice["message"]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_k3x9f2ab", "call_p0q1r2s3"]
    assert all(c["type"] == "function" and isinstance(c["function"]["arguments"], str) for c in calls)
    assert calls[0]["function"] == {"name": "get_weather", "arguments": '{"city":"Tokyo"}'}
    assert json.loads(calls[1]["function"]["arguments"]) == {"zone": "Asia/Tokyo", "24h": True}
    assert body["usage"] == {"prompt_tokens": 151, "completion_tokens": 42, "total_tokens": 193,
                             "prompt_tokens_details": {"cached_tokens": 100}}


def test_tool_calls_stream_deltas() -> None:
    chunks = feed_all(shaping.ChatShaper("qwen3:0.6b", include_usage=True), RECORDED_TOOL_EVENTS)
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 4
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = chunks[1]["choices"][0]["delta"]["tool_calls"]
    assert [(d["index"], d["id"], d["type"], d["function"]["name"]) for d in deltas] == [
        (0, "call_k3x9f2ab", "function", "get_weather"), (1, "call_p0q1r2s3", "function", "get_time")]
    assert json.loads(deltas[0]["function"]["arguments"]) == {"city": "Tokyo"}
    assert chunks[2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls", "logprobs": None}
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["total_tokens"] == 193
    assert all(c["usage"] is None for c in chunks[:3])
    assert len({c["id"] for c in chunks}) == 1 and all(c["system_fingerprint"] == "fp_ember" for c in chunks)


def test_text_stream_and_response() -> None:
    chunks = feed_all(shaping.ChatShaper("smollm2:135m"), RECORDED_TEXT_EVENTS)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "Par"}, {"reasoning": "hmm"},
                      {"content": "is"}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert all("usage" not in c for c in chunks)  # no usage fields unless include_usage was asked for
    shaper = shaping.ChatShaper("smollm2:135m")
    feed_all(shaper, RECORDED_TEXT_EVENTS)
    body = shaper.response()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Paris", "reasoning": "hmm"}
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3 and body["usage"]["prompt_tokens"] == 30


def test_ids_are_unique() -> None:
    assert len({shaping.ChatShaper("m").id for _ in range(50)}) == 50
    assert shaping.CompletionShaper("m").id.startswith("cmpl-")


def test_completion_shaping() -> None:
    chunks = feed_all(shaping.CompletionShaper("smollm2:135m", include_usage=True), RECORDED_TEXT_EVENTS)
    assert [c["choices"][0]["text"] for c in chunks[:-1]] == ["Par", "is", ""]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, None, "length"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 33
    assert all(c["object"] == "text_completion" for c in chunks)
    shaper = shaping.CompletionShaper("smollm2:135m")
    feed_all(shaper, RECORDED_TEXT_EVENTS)
    body = shaper.response()
    assert body["choices"] == [{"index": 0, "text": "Paris", "logprobs": None, "finish_reason": "length"}]


def test_response_without_final_event_is_an_error() -> None:
    from ember.errors import RunnerError

    with pytest.raises(RunnerError):
        shaping.ChatShaper("m").response()


def test_embedding_response_base64_is_little_endian_float32() -> None:
    from ember.engine.service import Embeddings

    result = Embeddings("e", [[0.6, -0.8], [1.0, 0.0]], prompt_tokens=4, total_duration=1, load_duration=0)
    floats = shaping.embedding_response(result, as_base64=False)
    assert floats["data"][0] == {"object": "embedding", "index": 0, "embedding": [0.6, -0.8]}
    assert floats["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    encoded = shaping.embedding_response(result, as_base64=True)["data"][0]["embedding"]
    decoded = struct.unpack("<2f", base64.b64decode(encoded))
    assert decoded == pytest.approx([0.6, -0.8], abs=1e-7)


def test_sse_framing() -> None:
    assert shaping.sse({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
    assert shaping.SSE_DONE == b"data: [DONE]\n\n"
