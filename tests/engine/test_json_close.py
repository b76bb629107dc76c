"""The closing-text computation: every prefix of a valid answer closes into a valid answer (pure, fast)."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ember.engine.json_close import JsonTracker, minimal_instance

TAGS = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
PERSON = {"type": "object", "required": ["name", "age", "address"], "properties": {
    "name": {"type": "string", "minLength": 2},
    "age": {"type": "integer", "minimum": 18, "maximum": 99},
    "address": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"},
                                                                       "zip": {"type": "string"}}}}}
COLORS = {"type": "object", "required": ["color", "shades"], "properties": {
    "color": {"enum": ["red", "green", "blue"]},
    "shades": {"type": "array", "minItems": 2, "items": {"type": "number"}}}}
REFS = {"$defs": {"item": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}},
        "type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item"},
                                                   "minItems": 1}}, "required": ["items"]}
CHOICE = {"type": "object", "properties": {"v": {"anyOf": [{"type": "string"}, {"type": "integer"},
                                                           {"type": "null"}]},
                                           "ok": {"type": "boolean"}, "k": {"const": "fixed"}},
          "required": ["v", "ok", "k"]}


def closes(fmt: Any, text: str) -> str:
    tracker = JsonTracker.for_format(fmt)
    tracker.feed(text)
    closing = tracker.closing()
    assert closing is not None, f"no closing for {text!r}"
    whole = text + closing
    jsonschema.validate(json.loads(whole), {"type": "object"} if fmt == "json" else fmt)
    return closing


@pytest.mark.parametrize(("fmt", "text", "closing"), [
    ("json", '{"name": "Jo', '"}'),
    ("json", '{"a": {"b": [1, 2.', "0]}}"),
    ("json", "", "{}"),
    ("json", '{"a": tr', "ue}"),
    ("json", '{"a": "x\\u00', '00"}'),
    ("json", '{"a": "x\\', 'n"}'),
    ("json", '{"a": 1,', '"":0}'),
    ("json", '{"a": 12', "}"),
    (TAGS, '{"tags": ["a", "b', '"]}'),
    (TAGS, "", "{}"),
    (PERSON, '{"name": "J', 'a","age":18,"address":{"city":""}}'),
    (PERSON, '{"name": "Jo", "age": 1', '8,"address":{"city":""}}'),
    (PERSON, '{"name": "Jo", "age": 42, "address": {"zi', 'p":"","city":""}}'),
    (COLORS, '{"color": "gr', 'een","shades":[0,0]}'),
    (COLORS, '{"color": "red", "shades": [0.5', ",0]}"),
    (COLORS, '{"co', 'lor":"red","shades":[0,0]}'),
    (REFS, '{"items": [', '{"id":0}]}'),
    (REFS, '{"items": [{"id": -', "0}]}"),
    (CHOICE, '{"v": nu', 'll,"ok":true,"k":"fixed"}'),
    (CHOICE, '{"v": 7, "ok": false, "k": "fi', 'xed"}'),
])
def test_closing_is_the_shortest_valid_end(fmt: Any, text: str, closing: str) -> None:
    assert closes(fmt, text) == closing


def test_a_complete_answer_needs_no_closing() -> None:
    assert closes(PERSON, '{"name": "Jo", "age": 20, "address": {"city": "X"}}\n') == ""


@pytest.mark.parametrize(("fmt", "smallest"), [
    ("json", "{}"),
    (TAGS, "{}"),
    ({**TAGS, "required": ["tags"]}, '{"tags":[]}'),
    (PERSON, '{"name":"aa","age":18,"address":{"city":""}}'),
    (COLORS, '{"color":"red","shades":[0,0]}'),
    (REFS, '{"items":[{"id":0}]}'),
    ({"type": "integer", "exclusiveMinimum": 3}, "4"),
    ({"type": "array", "items": {"type": "boolean"}, "minItems": 2}, "[true,true]"),
])
def test_minimal_instance(fmt: Any, smallest: str) -> None:
    assert minimal_instance(fmt) == smallest
    jsonschema.validate(json.loads(smallest), {"type": "object"} if fmt == "json" else fmt)


def _branchy(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {"type": "integer"}
    for _ in range(depth):
        inner = {"type": "object", "required": ["a", "b"], "properties": {"a": inner, "b": inner}}
    return inner


@pytest.mark.parametrize("schema", [
    _branchy(30),
    {"type": "array", "items": {"type": "string"}, "minItems": 10**12},
    {"type": "string", "minLength": 10**12},
    {"type": "object", "properties": {"child": {"$ref": "#"}}, "required": ["child"]},
    {"type": "object", "properties": {"a": {"type": "array", "minItems": "many"}}, "required": ["a"]},
])
def test_hostile_schemas_give_up_quickly(schema: dict[str, Any]) -> None:
    assert minimal_instance(schema) == ""


def test_text_outside_the_grammar_promises_nothing() -> None:
    tracker = JsonTracker.for_format("json")
    tracker.feed("Sure! {")
    assert tracker.lost and tracker.closing() is None


# -- property: every prefix of every valid answer closes validly ------------------------------------------------

@st.composite
def schema_and_value(draw: st.DrawFn, depth: int = 0) -> tuple[dict[str, Any], Any]:
    kinds = ["string", "integer", "number", "boolean", "null", "enum"] + (["object", "array"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "string":
        low = draw(st.integers(0, 3))
        return {"type": "string", "minLength": low}, draw(st.text(min_size=low, max_size=8))
    if kind == "integer":
        low = draw(st.integers(-50, 50))
        high = low + draw(st.integers(0, 200))
        return {"type": "integer", "minimum": low, "maximum": high}, draw(st.integers(low, high))
    if kind == "number":
        return {"type": "number"}, draw(st.floats(-1e6, 1e6, allow_nan=False))
    if kind == "boolean":
        return {"type": "boolean"}, draw(st.booleans())
    if kind == "null":
        return {"type": "null"}, None
    if kind == "enum":
        options = draw(st.lists(st.text(max_size=5), min_size=1, max_size=4, unique=True))
        return {"enum": options}, draw(st.sampled_from(options))
    if kind == "array":
        item_schema, _ = draw(schema_and_value(depth + 1))
        low = draw(st.integers(0, 3))
        values = [draw(_value_of(item_schema)) for _ in range(draw(st.integers(low, low + 2)))]
        return {"type": "array", "items": item_schema, "minItems": low}, values
    names = draw(st.lists(st.text("abcxyz_", min_size=1, max_size=5), min_size=1, max_size=4, unique=True))
    props, value, required = {}, {}, []
    for name in names:
        sub, sub_value = draw(schema_and_value(depth + 1))
        props[name] = sub
        if draw(st.booleans()):
            required.append(name)
            value[name] = sub_value
        elif draw(st.booleans()):
            value[name] = sub_value
    return {"type": "object", "properties": props, "required": required}, value


def _value_of(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A fresh valid value for a schema drawn by schema_and_value (for array items after the first)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema["type"]
    if kind == "string":
        return st.text(min_size=schema["minLength"], max_size=8)
    if kind == "integer":
        return st.integers(schema["minimum"], schema["maximum"])
    if kind == "number":
        return st.floats(-1e6, 1e6, allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(_value_of(schema["items"]), min_size=schema["minItems"], max_size=schema["minItems"] + 2)
    return st.fixed_dictionaries({k: _value_of(schema["properties"][k]) for k in schema["required"]})


def _serialize(value: Any, rng: random.Random) -> str:
    """JSON as a model writes it under the grammar: required keys first, some whitespace, escapes or not."""
    indent = rng.choice([None, 2])
    separators = rng.choice([(",", ":"), (", ", ": ")])
    return json.dumps(value, indent=indent, separators=separators if indent is None else None,
                      ensure_ascii=rng.random() < 0.5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_value(), st.integers(0, 2**32))
def test_every_prefix_of_a_valid_answer_closes_validly(pair: tuple[dict[str, Any], Any], seed: int) -> None:
    schema, value = pair
    jsonschema.validate(value, schema)
    text = _serialize(value, random.Random(seed))
    tracker = JsonTracker(schema)
    for i, ch in enumerate(text):
        closing = tracker.closing()
        assert closing is not None, f"no closing after {text[:i]!r}"
        jsonschema.validate(json.loads(text[:i] + closing), schema)
        tracker.feed(ch)
    assert tracker.closing() == ""
