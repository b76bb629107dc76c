"""The official `ollama` Python client (from PyPI) against a real Ember server, unchanged."""

from __future__ import annotations

import json

import jsonschema
import ollama
import pytest

from tests.conftest import BUNDLED
from tests.server_harness import RunningServer

QUESTION = [{"role": "user", "content": "What is the capital city of France? Answer with one word."}]


@pytest.fixture
def api(server: RunningServer) -> ollama.Client:
    return ollama.Client(host=server.url, timeout=120)


def test_list_and_show(api: ollama.Client) -> None:
    names = [m.model for m in api.list().models]
    assert BUNDLED in names
    shown = api.show(BUNDLED)
    assert shown.modelinfo is not None and shown.modelinfo["general.architecture"] == "llama"
    assert shown.details is not None and shown.details.family == "llama"
    assert shown.capabilities == ["completion"]


def test_chat_and_generate(api: ollama.Client) -> None:
    reply = api.chat(model=BUNDLED, messages=QUESTION, options={"temperature": 0, "num_predict": 20})
    assert reply.message.role == "assistant" and "Paris" in (reply.message.content or "")
    assert reply.done and reply.eval_count and reply.prompt_eval_count
    generated = api.generate(model=BUNDLED, prompt="Say hello.", options={"num_predict": 5})
    assert generated.done and generated.response


def test_streaming_chat(api: ollama.Client) -> None:
    parts = list(api.chat(model=BUNDLED, messages=QUESTION, stream=True, options={"num_predict": 12}))
    assert parts[-1].done and parts[-1].done_reason in ("stop", "length")
    assert all(not p.done for p in parts[:-1])
    assert "".join(p.message.content or "" for p in parts)


def test_streaming_generate(api: ollama.Client) -> None:
    parts = list(api.generate(model=BUNDLED, prompt="One, two,", stream=True, options={"num_predict": 6}))
    assert parts[-1].done and parts[-1].eval_count


def test_embed(api: ollama.Client) -> None:
    result = api.embed(model=BUNDLED, input=["a", "b", "c"])
    assert len(result.embeddings) == 3 and len(result.embeddings[0]) == 576
    legacy = api.embeddings(model=BUNDLED, prompt="a")
    assert len(legacy.embedding) == 576


def test_ps_shows_loaded_model(api: ollama.Client) -> None:
    api.generate(model=BUNDLED, prompt="", keep_alive="5m")
    entries = {m.model: m for m in api.ps().models}
    assert BUNDLED in entries
    assert entries[BUNDLED].expires_at is not None and entries[BUNDLED].size


def test_errors_raise_response_error(api: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        api.chat(model="no-such-model", messages=QUESTION)
    assert missing.value.status_code == 404
    with pytest.raises(ollama.ResponseError) as bad:
        api.chat(model=BUNDLED, messages=QUESTION, options={"temperature": "hot"})
    assert bad.value.status_code == 400 and "temperature" in str(bad.value.error)
    with pytest.raises(ollama.ResponseError) as tools:
        api.chat(model=BUNDLED, messages=QUESTION, tools=[{"type": "function", "function": {
            "name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}}])
    assert tools.value.status_code == 400 and "does not support tools" in str(tools.value.error)


TAGS = {"type": "object", "required": ["tags"], "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}


@pytest.mark.parametrize("num_predict", [16, 60])
def test_format_answers_parse_when_num_predict_cuts_them(api: ollama.Client, num_predict: int) -> None:
    options = {"temperature": 0, "num_predict": num_predict}
    generated = api.generate(model=BUNDLED, prompt="Give a JSON object with a key name.", format="json",
                             options=options)
    assert isinstance(json.loads(generated.response), dict)
    assert generated.eval_count is not None and generated.eval_count <= num_predict
    reply = api.chat(model=BUNDLED, format=TAGS, options=options, messages=[
        {"role": "user", "content": "Suggest many tags for an article about cooking pasta."}])
    jsonschema.validate(json.loads(reply.message.content or ""), TAGS)
    parts = list(api.chat(model=BUNDLED, format=TAGS, options=options, stream=True, messages=[
        {"role": "user", "content": "Suggest many tags for an article about cooking pasta."}]))
    assert "".join(p.message.content or "" for p in parts) == reply.message.content
    assert parts[-1].done_reason == reply.done_reason
