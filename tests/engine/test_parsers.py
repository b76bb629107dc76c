"""Tool-call and thinking parsers on recorded model outputs."""

from __future__ import annotations

from ember.engine.parsers import ThinkingParser, ToolCallParser, parse_tool_calls


def feed_all(parser: ThinkingParser, pieces: list[str]) -> tuple[str, str]:
    thinking, content = "", ""
    for piece in pieces:
        t, c = parser.feed(piece)
        thinking, content = thinking + t, content + c
    t, c = parser.flush()
    return thinking + t, content + c


def test_thinking_split_across_pieces() -> None:
    pieces = ["<th", "ink>Let me ", "think.</thi", "nk>\n\nThe answer", " is 4."]
    assert feed_all(ThinkingParser(), pieces) == ("Let me think.", "The answer is 4.")


def test_no_think_tag_streams_content_unchanged() -> None:
    assert feed_all(ThinkingParser(), ["Hello", " world"]) == ("", "Hello world")


def test_template_that_opens_the_think_block() -> None:
    assert feed_all(ThinkingParser(in_thinking=True), ["reasoning", "</think>", "answer"]) == ("reasoning", "answer")


def test_unclosed_thinking_is_reported_as_thinking() -> None:
    assert feed_all(ThinkingParser(), ["<think>still going"]) == ("still going", "")


def test_hermes_tool_call() -> None:
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Tokyo"}}\n</tool_call>'
    calls = parse_tool_calls(text)
    assert calls is not None
    assert calls[0]["function"] == {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo"}}
    assert calls[0]["id"].startswith("call_") and len(calls[0]["id"]) == 13


def test_two_hermes_calls() -> None:
    text = ('<tool_call>{"name": "a", "arguments": {}}</tool_call>\n'
            '<tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>')
    calls = parse_tool_calls(text)
    assert calls is not None and [c["function"]["name"] for c in calls] == ["a", "b"]
    assert [c["function"]["index"] for c in calls] == [0, 1]


def test_llama3_bare_json_with_parameters() -> None:
    calls = parse_tool_calls('{"name": "search", "parameters": {"q": "ember"}}')
    assert calls is not None and calls[0]["function"]["arguments"] == {"q": "ember"}


def test_mistral_tool_calls_with_string_arguments() -> None:
    calls = parse_tool_calls('[TOOL_CALLS][{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}]')
    assert calls is not None and calls[0]["function"]["arguments"] == {"a": 1, "b": 2}


def test_json_that_is_not_a_tool_call() -> None:
    assert parse_tool_calls('{"answer": 42}') is None
    assert parse_tool_calls("<tool_call>not json</tool_call>") is None


def test_stream_parser_passes_prose_and_holds_calls() -> None:
    prose = ToolCallParser()
    assert prose.feed("Hi") == "Hi" and prose.feed(" there") == " there" and prose.flush() == ""
    held = ToolCallParser()
    assert held.feed('<tool_') == "" and held.feed('call>{"name": "f", "arguments": {}}</tool_call>') == ""
    assert held.flush() == "" and held.calls[0]["function"]["name"] == "f"


def test_stream_parser_releases_json_that_was_not_a_call() -> None:
    parser = ToolCallParser()
    assert parser.feed('{"answer": 42}') == ""
    assert parser.flush() == '{"answer": 42}'
    assert parser.calls == []
