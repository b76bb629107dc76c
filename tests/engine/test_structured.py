"""The budget rule: a format answer cut anywhere by num_predict still ends valid, within num_predict (pure)."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ember.engine.json_close import minimal_instance
from ember.engine.structured import ClosingBudget
from tests.engine.test_json_close import schema_and_value


def chars(text: str) -> list[int]:
    return [ord(c) for c in text]


def generate(fmt: Any, pieces: list[str], limit: int) -> tuple[str, int, bool]:
    """What the batcher does with a format answer: (text, tokens used, closed early)."""
    budget = ClosingBudget(fmt, chars)
    out, used = "", 0
    for piece in pieces:
        if used == limit:
            break
        closing = budget.admit(piece, used + 1, limit)
        if closing is not None:
            return out + closing.text, used + len(closing.tokens), True
        out, used = out + piece, used + 1
    return out, used, False


def test_a_long_string_is_cut_and_closed() -> None:
    text, used, closed = generate("json", list('{"name": "aaaaaaaaaaaaaaa"}'), 13)
    assert (text, used, closed) == ('{"name": "a"}', 13, True)


def test_an_answer_that_fits_is_left_alone() -> None:
    assert generate("json", list('{"a": 1}'), 8) == ('{"a": 1}', 8, False)


def test_the_closing_is_tokenized_once_per_distinct_text() -> None:
    calls: list[str] = []

    def counting(text: str) -> list[int]:
        calls.append(text)
        return chars(text)

    budget = ClosingBudget("json", counting)
    for piece in '{"a": "bbbbbbbb':
        budget.admit(piece, 1, 100)
    assert len(calls) == len(set(calls))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_value(), st.integers(0, 2**32), st.data())
def test_any_budget_from_the_minimum_up_gives_a_valid_answer(pair: tuple[dict[str, Any], Any], seed: int,
                                                             data: st.DataObject) -> None:
    schema, value = pair
    rng = random.Random(seed)
    text = json.dumps(value, separators=rng.choice([(",", ":"), (", ", ": ")]))
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, len(text) // 3))) if len(text) > 1 else []
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    smallest = len(minimal_instance(schema))
    limit = data.draw(st.integers(max(smallest, 1), max(smallest, 1) + len(pieces) + 2))
    out, used, closed = generate(schema, pieces, limit)
    assert used <= limit
    jsonschema.validate(json.loads(out), schema)
    assert closed or text.startswith(out), "untouched answers are the model's own text"
