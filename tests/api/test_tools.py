"""Tool calling end to end with the real engine: a model whose Modelfile TEMPLATE renders `.Tools`, and a JSON
schema that makes SmolLM2 answer in the bare tool-call shape, so the parser turns its output into tool_calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.server_harness import RunningServer, start_server

TEMPLATE = """{{- if .Tools }}<|im_start|>system
You can call these tools: {{ json .Tools }}
Answer with a JSON object {"name": <tool name>, "arguments": {...}}.<|im_end|>
{{ end }}{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}

CALL_SCHEMA = {"type": "object", "required": ["name", "arguments"], "properties": {
    "name": {"type": "string", "enum": ["get_weather"]},
    "arguments": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}}

ASK = [{"role": "user", "content": "What is the weather in Tokyo?"}]


@pytest.fixture(scope="module")
def tool_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(Path(tmp_path_factory.mktemp("tools")))
    with server.client() as client:
        created = client.post("/api/create", json={"model": "smol-tools", "from": "smollm2:135m",
                                                   "template": TEMPLATE, "stream": False})
        assert created.status_code == 200, created.text
    yield server
    server.stop()


def test_template_with_tools_gives_the_capability(tool_server: RunningServer) -> None:
    with tool_server.client() as client:
        shown = client.post("/api/show", json={"model": "smol-tools"}).json()
    assert "tools" in shown["capabilities"]


def test_native_chat_returns_parsed_tool_calls(tool_server: RunningServer) -> None:
    with tool_server.client() as client:
        body = client.post("/api/chat", json={"model": "smol-tools", "messages": ASK, "tools": [WEATHER_TOOL],
                                              "format": CALL_SCHEMA, "stream": False,
                                              "options": {"temperature": 0, "num_predict": 60}}).json()
    calls = body["message"]["tool_calls"]
    assert body["message"]["content"] == ""
    assert calls[0]["function"]["name"] == "get_weather"
    assert isinstance(calls[0]["function"]["arguments"], dict) and "city" in calls[0]["function"]["arguments"]
    assert calls[0]["id"].startswith("call_")


def test_streamed_chat_sends_tool_calls_in_their_own_chunk(tool_server: RunningServer) -> None:
    with tool_server.client() as client:
        response = client.post("/api/chat", json={"model": "smol-tools", "messages": ASK, "tools": [WEATHER_TOOL],
                                                  "format": CALL_SCHEMA,
                                                  "options": {"temperature": 0, "num_predict": 60}})
    chunks = [json.loads(line) for line in response.text.splitlines()]
    with_calls = [c for c in chunks if c["message"].get("tool_calls")]
    assert len(with_calls) == 1 and not with_calls[0]["done"]
    assert "".join(c["message"]["content"] for c in chunks) == ""
    assert chunks[-1]["done"] is True


def test_tool_result_round_trip(tool_server: RunningServer) -> None:
    messages = [*ASK,
                {"role": "assistant", "content": "",
                 "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}]},
                {"role": "tool", "content": "11 degrees and rain", "tool_name": "get_weather"}]
    with tool_server.client() as client:
        response = client.post("/api/chat", json={"model": "smol-tools", "messages": messages,
                                                  "tools": [WEATHER_TOOL], "stream": False,
                                                  "options": {"num_predict": 20}})
    assert response.status_code == 200, response.text


def test_openai_sdk_gets_tool_calls_with_string_arguments(tool_server: RunningServer) -> None:
    api = openai.OpenAI(base_url=tool_server.url + "/v1", api_key="ember", http_client=httpx.Client(timeout=120))
    reply = api.chat.completions.create(
        model="smol-tools", messages=ASK, tools=[WEATHER_TOOL], temperature=0, max_tokens=60,  # type: ignore[list-item]
        response_format={"type": "json_schema", "json_schema": {"name": "call", "schema": CALL_SCHEMA}},
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert "city" in json.loads(call.function.arguments)  # type: ignore[union-attr]
