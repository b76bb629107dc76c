"""The official ``openai`` SDK against a real Ember server (llama.cpp, bundled SmolLM2)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import openai
import pytest

from ember.engine.service import ChatParams, Delta, Event, Finished, Started, ToolCalls
from ember.errors import RunnerCrashed, ServerBusy
from tests.conftest import BUNDLED
from tests.server_harness import RunningServer, start_server

QUESTION: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def sdk(server: RunningServer) -> openai.OpenAI:
    # max_retries=0: the SDK would otherwise retry 5xx answers and hide what the server said.
    return openai.OpenAI(base_url=server.url + "/v1", api_key="ember", max_retries=0, timeout=120)


@pytest.fixture
def oai(server: RunningServer) -> Iterator[openai.OpenAI]:
    with sdk(server) as client:
        yield client


# -- chat ----------------------------------------------------------------------------------------------------

def test_chat_non_stream(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=BUNDLED, messages=QUESTION, max_tokens=24, seed=1)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == BUNDLED and reply.system_fingerprint == "fp_ember"
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens is not None


def test_chat_stream_with_usage_matches_non_stream(oai: openai.OpenAI) -> None:
    request: dict[str, Any] = {"model": BUNDLED, "messages": QUESTION, "max_tokens": 24, "seed": 42,
                               "temperature": 0.9}
    chunks = list(oai.chat.completions.create(**request, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    finish = chunks[-2]
    assert finish.choices[0].finish_reason in ("stop", "length") and finish.choices[0].delta.content is None
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens > 0 and last.usage.completion_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    whole = oai.chat.completions.create(**request)
    assert whole.choices[0].message.content == text, "same seed, same text"
    assert whole.usage is not None and whole.usage.completion_tokens == last.usage.completion_tokens


def test_max_tokens_gives_length(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=BUNDLED, max_tokens=3,
                                        messages=[{"role": "user", "content": "Write a long story about a cat."}])
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3


def test_json_schema_response_format(oai: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"]}
    reply = oai.chat.completions.create(
        model=BUNDLED, temperature=0, max_tokens=200,
        messages=[{"role": "user", "content": "Give the largest city of Japan as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}})
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), schema)


TAGS: dict[str, Any] = {"type": "object", "required": ["tags"],
                        "properties": {"tags": {"type": "array", "items": {"type": "string"}, "minItems": 1}}}


@pytest.mark.parametrize("max_tokens", [16, 40])
def test_json_schema_answer_parses_when_max_tokens_cuts_it(oai: openai.OpenAI, max_tokens: int) -> None:
    request: dict[str, Any] = {
        "model": BUNDLED, "temperature": 0, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Suggest many tags for an article about cooking pasta."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "tags", "schema": TAGS}}}
    reply = oai.chat.completions.create(**request)
    choice = reply.choices[0]
    jsonschema.validate(json.loads(choice.message.content or ""), TAGS)
    assert reply.usage is not None and reply.usage.completion_tokens <= max_tokens
    if choice.finish_reason == "length":
        assert (choice.model_extra or {}).get("closed_early") is True
    chunks = list(oai.chat.completions.create(**request, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == choice.message.content
    assert (chunks[-1].choices[0].model_extra or {}).get("closed_early") == (choice.model_extra or {}).get(
        "closed_early")


def test_a_schema_that_cannot_fit_max_tokens_is_a_400_naming_the_minimum(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(
            model=BUNDLED, max_tokens=3, messages=[{"role": "user", "content": "Tags for pasta."}],
            response_format={"type": "json_schema", "json_schema": {"name": "tags", "schema": TAGS}})
    assert "smallest valid answer" in info.value.message and "more than num_predict (3)" in info.value.message


def test_json_object_response_format(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model=BUNDLED, seed=3, max_tokens=200,
                                        messages=[{"role": "user", "content": "Describe a dog as JSON."}],
                                        response_format={"type": "json_object"})
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


def test_tools_on_model_without_tool_support(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model=BUNDLED, messages=QUESTION, tools=TOOLS)
    assert "smollm2:135m does not support tools" in info.value.message
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model=BUNDLED, messages=QUESTION, tools=TOOLS, tool_choice="required")
    # tool_choice "none" means the tools are not offered at all, so the request is served.
    reply = oai.chat.completions.create(model=BUNDLED, messages=QUESTION, tools=TOOLS, tool_choice="none",
                                        max_tokens=2)
    assert reply.choices[0].message.tool_calls is None


def test_unsupported_requests_are_clear_400s(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="n > 1 is not supported"):
        oai.chat.completions.create(model=BUNDLED, messages=QUESTION, n=2)
    image = [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                          {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]}]
    with pytest.raises(openai.BadRequestError, match="image URLs are not currently supported"):
        oai.chat.completions.create(model=BUNDLED, messages=image)
    with pytest.raises(openai.BadRequestError, match="too short"):
        oai.chat.completions.create(model=BUNDLED, messages=[])


# -- recorded engine events through the real HTTP layer and SDK parser -----------------------------------------

def _recorded(events: list[Any]) -> Any:
    async def chat(params: ChatParams) -> AsyncGenerator[Event, None]:
        for event in events:
            if isinstance(event, Exception):
                raise event
            yield event
    return chat


TOOL_EVENTS: list[Event] = [
    Started(BUNDLED, 40),
    ToolCalls([{"id": "call_a1b2c3d4", "function": {"index": 0, "name": "get_weather",
                                                     "arguments": {"city": "Tokyo"}}}]),
    Finished(BUNDLED, "stop", prompt_eval_count=40, eval_count=12),
]


def test_tool_calls_reach_the_sdk(oai: openai.OpenAI, server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server.services.engine, "chat", _recorded(TOOL_EVENTS))
    reply = oai.chat.completions.create(model=BUNDLED, messages=QUESTION, tools=TOOLS)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = (choice.message.tool_calls or [])[0]
    assert call.id == "call_a1b2c3d4" and call.type == "function"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Tokyo"}

    chunks = list(oai.chat.completions.create(model=BUNDLED, messages=QUESTION, tools=TOOLS, stream=True))
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert [(d.index, d.id, d.type) for d in deltas] == [(0, "call_a1b2c3d4", "function")]
    assert deltas[0].function is not None and deltas[0].function.arguments == '{"city":"Tokyo"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_error_after_stream_started(oai: openai.OpenAI, server: RunningServer,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    crash = RunnerCrashed("model runner process exited unexpectedly")
    monkeypatch.setattr(server.services.engine, "chat", _recorded([Started(BUNDLED, 5), Delta("Hel"), crash]))
    stream = oai.chat.completions.create(model=BUNDLED, messages=QUESTION, stream=True)
    with pytest.raises(openai.APIError, match="exited unexpectedly"):
        list(stream)


def test_full_queue_is_503(oai: openai.OpenAI, server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server.services.engine, "chat", _recorded([ServerBusy()]))
    with pytest.raises(openai.InternalServerError) as info:
        oai.chat.completions.create(model=BUNDLED, messages=QUESTION, stream=True)
    assert info.value.status_code == 503
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "server_error"
    assert "maximum pending requests exceeded" in info.value.message


# -- completions, embeddings, models ---------------------------------------------------------------------------

def test_completions_non_stream_and_stream(oai: openai.OpenAI) -> None:
    reply = oai.completions.create(model=BUNDLED, prompt="The capital of France is", max_tokens=6, seed=1)
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert reply.choices[0].text and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.completion_tokens > 0

    chunks = list(oai.completions.create(model=BUNDLED, prompt="The capital of France is", max_tokens=6, seed=1,
                                         stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == reply.choices[0].text, "same seed, same text"
    assert chunks[-2].choices[0].finish_reason == reply.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens
    with pytest.raises(openai.BadRequestError, match="echo is not supported"):
        oai.completions.create(model=BUNDLED, prompt="x", echo=True)


def test_embeddings_float_and_base64(oai: openai.OpenAI) -> None:
    floats = oai.embeddings.create(model=BUNDLED, input=["hello", "world"], encoding_format="float")
    assert floats.object == "list" and [d.index for d in floats.data] == [0, 1]
    vector = np.array(floats.data[0].embedding)
    assert len(vector) == 576 and abs(np.linalg.norm(vector) - 1.0) < 1e-4
    assert floats.usage.prompt_tokens > 0 and floats.usage.total_tokens == floats.usage.prompt_tokens

    encoded = oai.embeddings.create(model=BUNDLED, input=["hello", "world"], encoding_format="base64")
    for plain, packed in zip(floats.data, encoded.data, strict=True):
        assert isinstance(packed.embedding, str)
        decoded = np.frombuffer(base64.b64decode(packed.embedding), dtype="<f4")
        assert np.allclose(decoded, np.array(plain.embedding), atol=1e-6, rtol=0)

    short = oai.embeddings.create(model=BUNDLED, input="hello", dimensions=64, encoding_format="float")
    assert len(short.data[0].embedding) == 64
    with pytest.raises(openai.BadRequestError, match="invalid input"):
        oai.embeddings.create(model=BUNDLED, input=[])


def test_models_list_and_retrieve(oai: openai.OpenAI) -> None:
    models = {m.id: m for m in oai.models.list()}
    assert BUNDLED in models
    assert models[BUNDLED].object == "model" and models[BUNDLED].owned_by == "library"
    assert models[BUNDLED].created > 1_600_000_000
    assert oai.models.retrieve(BUNDLED).id == BUNDLED
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("no-such-model:latest")
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("a/b/c/d/e")  # not even a valid name: still just an unknown model


def test_empty_store_lists_no_models(tmp_path: Path) -> None:
    running = start_server(tmp_path, bundled_model="")
    try:
        with running.client() as client:
            assert client.get("/v1/models").json() == {"object": "list", "data": []}
    finally:
        running.stop()


# -- errors -------------------------------------------------------------------------------------------------

def test_unknown_model_is_404_envelope(oai: openai.OpenAI, client: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="no-such-model", messages=QUESTION)
    response = client.post("/v1/chat/completions", json={"model": "no-such-model", "messages": QUESTION})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "not_found_error" and "not found" in error["message"]
    assert error["param"] is None and error["code"] is None


def test_malformed_body_is_400_envelope(client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", content=b"{not json",
                           headers={"content-type": "application/json", "authorization": "Bearer anything"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("invalid JSON") and error["type"] == "invalid_request_error"


def test_oversized_body_is_413(oai: openai.OpenAI, server: RunningServer) -> None:
    huge = "x" * (server.settings.max_body_bytes + 1)
    with pytest.raises(openai.APIStatusError) as info:
        oai.chat.completions.create(model=BUNDLED, messages=[{"role": "user", "content": huge}])
    assert info.value.status_code == 413 and "too large" in info.value.message


# -- Ember extras ------------------------------------------------------------------------------------------------

def test_extra_body_num_ctx_reaches_the_loaded_model(tmp_path: Path) -> None:
    # Own server: the shared one may hold the model with a larger context, which serves a smaller num_ctx as is.
    running = start_server(tmp_path, context_length=512)
    try:
        with sdk(running) as oai, running.client() as client:
            oai.chat.completions.create(model=BUNDLED, messages=QUESTION, max_tokens=1)
            assert _context_length(client) == 512
            oai.chat.completions.create(model=BUNDLED, messages=QUESTION, max_tokens=1, extra_body={"num_ctx": 1024})
            assert _context_length(client) == 1024
    finally:
        running.stop()


def _context_length(client: httpx.Client) -> int:
    models = client.get("/api/ps").json()["models"]
    return int(next(m for m in models if m["name"] == BUNDLED)["context_length"])
