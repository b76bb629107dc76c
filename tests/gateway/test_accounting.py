"""Token counts read from the tail of a relayed answer, whatever the chunk boundaries."""

from __future__ import annotations

import json

from ember.gateway.accounting import TAIL_BYTES, UsageTracker


def _feed(tracker: UsageTracker, data: bytes, size: int) -> None:
    for start in range(0, len(data), size):
        tracker.feed(data[start:start + size])


def test_ollama_final_line_in_any_chunking() -> None:
    lines = [{"response": 'say "eval_count": 999', "done": False}] * 3 + [
        {"response": "", "done": True, "done_reason": "stop", "context": list(range(5000)),
         "prompt_eval_count": 12, "eval_count": 34}]
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    for size in (1, 7, 4096, len(data)):
        tracker = UsageTracker(sse=False)
        _feed(tracker, data, size)
        usage = tracker.usage()
        assert (usage.prompt_tokens, usage.completion_tokens, usage.done_reason) == (12, 34, "stop")


def test_generated_text_cannot_fake_counts() -> None:
    tracker = UsageTracker(sse=False)
    tracker.feed(json.dumps({"message": {"content": '"eval_count": 5000, "done_reason": "hack"'}}).encode())
    usage = tracker.usage()
    assert (usage.completion_tokens, usage.done_reason) == (0, None)


def test_openai_usage_and_sse_without_usage() -> None:
    with_usage = UsageTracker(sse=True)
    with_usage.feed(b'data: {"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}\n\n')
    with_usage.feed(b'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}\n\ndata: [DONE]\n\n')
    assert with_usage.usage().total == 11
    counted = UsageTracker(sse=True)
    for text in ("", "A", " b", "c"):
        counted.feed(b'data: {"choices":[{"delta":{"content":' + json.dumps(text).encode() + b'}}]}\n\n')
    counted.feed(b'data: {"choices":[{"delta":{},"finish_reason":"length"}]}\n\n')
    usage = counted.usage()
    assert (usage.prompt_tokens, usage.completion_tokens, usage.done_reason) == (0, 3, "length")


def test_tail_stays_bounded() -> None:
    tracker = UsageTracker(sse=False)
    for _ in range(2000):
        tracker.feed(b"x" * 1000)
    tracker.feed(b'{"prompt_eval_count":1,"eval_count":2}\n')
    assert tracker._size < TAIL_BYTES + 2000 and tracker.usage().total == 3


def test_a_stream_that_ends_in_an_error_says_which() -> None:
    tracker = UsageTracker(sse=False)
    tracker.feed(b'{"status":"pulling manifest"}\n')
    tracker.feed(b'{"error":"pull model manifest: cannot connect to the registry"}\n')
    assert tracker.stream_error() == "pull model manifest: cannot connect to the registry"
    fine = UsageTracker(sse=False)
    fine.feed(b'{"message":{"content":"the word \\"error\\" in text"},"done":false}\n{"done":true,"eval_count":3}\n')
    assert fine.stream_error() is None
    openai = UsageTracker(sse=True)
    openai.feed(b'data: {"error":{"message":"engine node failed"}}\n\n')
    assert openai.stream_error() == "engine node failed"


def test_stream_error_is_the_final_error_line_only() -> None:
    def tracked(*lines: bytes, sse: bool = False) -> UsageTracker:
        tracker = UsageTracker(sse=sse)
        for line in lines:
            tracker.feed(line)
        return tracker

    progress = b'{"status":"pulling manifest"}\n'
    assert tracked(progress, b'{"error": "pull model manifest: no such host"}\n').stream_error() == (
        "pull model manifest: no such host")
    assert tracked(progress, b'{"status":"success"}\n').stream_error() is None
    # A model that writes the word error, or an error mid-stream that the answer recovered from, is no failure.
    assert tracked(b'{"response":"{\\"error\\": 1}","done":false}\n', b'{"done":true}\n').stream_error() is None
    assert tracked(b'{"error": "x"}\n', b'{"status":"success"}\n').stream_error() is None
    assert tracked(b'{"error": "cut off', sse=False).stream_error() is None  # not JSON: status decides
