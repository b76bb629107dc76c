"""Log-probabilities from the real model through the official ``ollama`` and ``openai`` clients."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import httpx
import ollama
import openai
import pytest

from tests.conftest import BUNDLED
from tests.server_harness import RunningServer

QUESTION = [{"role": "user", "content": "Name three colours."}]


def check_entries(entries: Sequence[Any], text: str, top_n: int) -> None:
    """Each entry is a log-probability, its top list is sorted and holds the chosen token when it is likely enough."""
    assert entries, "no logprobs came back"
    assert "".join(e.token for e in entries) == text, "the tokens spell the answer"
    for entry in entries:
        assert entry.logprob <= 0
        top = entry.top_logprobs or []
        assert len(top) == top_n
        values = [t.logprob for t in top]
        assert values == sorted(values, reverse=True)
        assert all(v <= 0 for v in values) and math.fsum(math.exp(v) for v in values) <= 1 + 1e-6
        if entry.logprob >= values[-1]:
            chosen = [t for t in top if t.token == entry.token]
            assert chosen and math.isclose(chosen[0].logprob, entry.logprob, rel_tol=1e-6, abs_tol=1e-9)


def test_ollama_chat_and_generate_return_logprobs(server: RunningServer) -> None:
    client = ollama.Client(host=server.url, timeout=120)
    greedy = {"temperature": 0, "num_predict": 12}
    reply = client.chat(model=BUNDLED, messages=QUESTION, options=greedy, logprobs=True, top_logprobs=3)
    assert reply.logprobs is not None
    check_entries(reply.logprobs, reply.message.content or "", 3)
    # greedy decoding picks the likeliest token every time
    assert all(e.logprob == e.top_logprobs[0].logprob for e in reply.logprobs if e.top_logprobs)

    chunks = list(client.generate(model=BUNDLED, prompt="The sky is", options=greedy, stream=True, logprobs=True,
                                  top_logprobs=2))
    streamed = [e for c in chunks for e in (c.logprobs or [])]
    check_entries(streamed, "".join(c.response or "" for c in chunks), 2)


def test_ollama_without_logprobs_sends_none_and_bad_top_is_400(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as http:
        plain = http.post("/api/generate", json={"model": BUNDLED, "prompt": "Hi", "stream": False,
                                                 "options": {"num_predict": 4}})
        assert plain.status_code == 200 and "logprobs" not in plain.json()
        bad = http.post("/api/chat", json={"model": BUNDLED, "messages": QUESTION, "logprobs": True,
                                           "top_logprobs": 21})
        assert bad.status_code == 400 and bad.json() == {"error": "top_logprobs must be between 0 and 20"}


def test_openai_chat_logprobs_streaming_and_not(server: RunningServer) -> None:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="ember", max_retries=0, timeout=120) as oai:
        whole = oai.chat.completions.create(model=BUNDLED, messages=QUESTION, max_tokens=12, temperature=0,
                                            logprobs=True, top_logprobs=4)
        choice = whole.choices[0]
        assert choice.logprobs is not None and choice.logprobs.content
        check_entries(choice.logprobs.content, choice.message.content or "", 4)

        stream = oai.chat.completions.create(model=BUNDLED, messages=QUESTION, max_tokens=12, temperature=0,
                                             logprobs=True, top_logprobs=4, stream=True)
        entries, text = [], ""
        for chunk in stream:
            if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
                entries.extend(chunk.choices[0].logprobs.content)
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
        check_entries(entries, text, 4)
        assert text == choice.message.content, "greedy: the stream says what the whole answer said"
        assert [e.logprob for e in entries] == pytest.approx([e.logprob for e in choice.logprobs.content], abs=1e-4)


def test_openai_legacy_completions_logprobs(server: RunningServer) -> None:
    with openai.OpenAI(base_url=server.url + "/v1", api_key="ember", max_retries=0, timeout=120) as oai:
        done = oai.completions.create(model=BUNDLED, prompt="One, two,", max_tokens=6, temperature=0, logprobs=2)
    lp = done.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs and lp.text_offset is not None
    assert "".join(lp.tokens) == done.choices[0].text
    assert all(v <= 0 for v in lp.token_logprobs)
    assert all(len(top) == 2 for top in lp.top_logprobs)
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
