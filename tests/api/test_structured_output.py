"""Structured output on the bundled model: `format` answers parse and validate at any budget from 16 to 80
tokens, `closed_early` says exactly when the closing logic changed the answer, and impossible budgets get a 400.

Each case first runs with a roomy budget and streaming, so the model's own answer is known chunk by chunk
(one chunk per token for this ASCII output); a budgeted run must return that text untouched unless it says
`closed_early`, and a different, valid text when it does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
import pytest

from tests.conftest import BUNDLED

TAGS = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
PERSON = {"type": "object", "required": ["name", "age", "address"], "properties": {
    "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "address": {"type": "object", "required": ["street", "city"],
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}}}
MOOD = {"type": "object", "required": ["mood", "reason"], "properties": {
    "mood": {"enum": ["happy", "sad", "angry", "calm"]}, "reason": {"type": "string"}}}
STEPS = {"type": "object", "required": ["steps"], "properties": {
    "steps": {"type": "array", "minItems": 3, "items": {"type": "string"}}}}
PLACE = {"type": "object", "required": ["lat", "lon", "population", "capital"], "properties": {
    "lat": {"type": "number"}, "lon": {"type": "number"}, "population": {"type": "integer", "minimum": 0},
    "capital": {"type": "boolean"}}}
ORDER = {"type": "object", "required": ["items"], "properties": {"items": {
    "type": "array", "minItems": 2, "items": {"type": "object", "required": ["name", "price", "in_stock"],
                                              "properties": {"name": {"type": "string"}, "price": {"type": "number"},
                                                             "in_stock": {"type": "boolean"}}}}}}


@dataclass(frozen=True)
class Case:
    name: str
    fmt: Any
    prompt: str
    chat: bool = True


CASES = [
    Case("json-name", "json", "Give a JSON object with a key name.", chat=False),
    Case("tags", TAGS, "Suggest tags for an article about cooking fresh pasta at home."),
    Case("nested", PERSON, "Describe a person who lives in Paris, with their address."),
    Case("enum", MOOD, "How does someone feel after winning the lottery, and why?"),
    Case("min-items", STEPS, "Give the steps to make a cup of tea."),
    Case("numbers", PLACE, "Give the coordinates and population of Tokyo."),
    Case("array-of-objects", ORDER, "Write a grocery order with a few items and their prices."),
]
BUDGETS = (16, 24, 32, 48, 64, 80)


def ask(client: httpx.Client, case: Case, num_predict: int, *, stream: bool = False) -> httpx.Response:
    body: dict[str, Any] = {"model": BUNDLED, "format": case.fmt, "stream": stream,
                            "options": {"temperature": 0, "num_predict": num_predict}}
    if case.chat:
        body["messages"] = [{"role": "user", "content": case.prompt}]
    else:
        body["prompt"] = case.prompt
    return client.post("/api/chat" if case.chat else "/api/generate", json=body)


def text_of(chunk: dict[str, Any]) -> str:
    return str(chunk["message"]["content"] if "message" in chunk else chunk["response"])


def schema_of(case: Case) -> dict[str, Any]:
    return {"type": "object"} if case.fmt == "json" else dict(case.fmt)


_OWN: dict[tuple[str, str], tuple[str, ...]] = {}


def own_pieces(url: str, case: Case) -> tuple[str, ...]:
    """The model's own answer at a roomy budget, one streamed chunk per token (asked once per server)."""
    if (url, case.name) not in _OWN:
        with httpx.Client(base_url=url, timeout=120) as client:
            response = ask(client, case, 256, stream=True)
        chunks = [json.loads(line) for line in response.text.splitlines() if line]
        _OWN[url, case.name] = tuple(text_of(c) for c in chunks if not c["done"])
    return _OWN[url, case.name]


def check_budget(client: httpx.Client, url: str, case: Case, budget: int) -> str:
    """One budgeted request's promises; "closed" (the closing logic acted), "own" (it did not) or "refused"."""
    response = ask(client, case, budget)
    if response.status_code == 400:
        needed = int(re.search(r"takes (\d+) tokens", response.json()["error"]).group(1))  # type: ignore[union-attr]
        assert needed > budget, response.text
        return "refused"
    assert response.status_code == 200, response.text
    body = response.json()
    text = text_of(body)
    jsonschema.validate(json.loads(text), schema_of(case))
    assert body["eval_count"] <= budget
    own = "".join(own_pieces(url, case)[: body["eval_count"]])
    if body.get("closed_early"):
        assert body["done_reason"] == "length"
        assert response.headers.get("x-ember-closed-early") == "true"
        assert text != own, "closed_early, yet the text is the model's own"
        return "closed"
    assert "closed_early" not in body and "x-ember-closed-early" not in response.headers
    assert text == own, "no closed_early, yet the text is not the model's own"
    return "own"


def test_issue_cases_close_within_budget(client: httpx.Client, server: Any) -> None:
    """The two reported failures: cut mid-string before, now complete and marked."""
    assert check_budget(client, server.url, CASES[0], 60) == "closed"
    assert check_budget(client, server.url, CASES[1], 80) == "closed"


def test_a_budget_below_the_smallest_answer_is_refused_up_front(client: httpx.Client, server: Any) -> None:
    response = ask(client, CASES[-1], 16)
    assert response.status_code == 400
    needed = int(re.search(r"takes (\d+) tokens", response.json()["error"]).group(1))  # type: ignore[union-attr]
    assert needed > 16
    assert check_budget(client, server.url, CASES[-1], needed) == "closed"  # exactly the minimum is enough


def test_an_answer_that_fits_is_untouched(client: httpx.Client, server: Any) -> None:
    pieces = own_pieces(server.url, CASES[2])
    body = ask(client, CASES[2], 256).json()
    assert body["done_reason"] == "stop" and "closed_early" not in body
    assert text_of(body) == "".join(pieces)


def test_streaming_ends_with_the_closing_and_the_flag(client: httpx.Client) -> None:
    response = ask(client, CASES[0], 30, stream=True)
    chunks = [json.loads(line) for line in response.text.splitlines() if line]
    final = chunks[-1]
    assert final["done"] and final["done_reason"] == "length" and final["closed_early"] is True
    assert isinstance(json.loads("".join(text_of(c) for c in chunks)), dict)
    assert "x-ember-closed-early" not in response.headers  # a stream's headers leave before the answer ends


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_budget_from_16_to_80_gives_a_valid_answer(client: httpx.Client, server: Any, case: Case) -> None:
    outcomes = {budget: check_budget(client, server.url, case, budget) for budget in BUDGETS}
    print(f"{case.name}: {outcomes}")
