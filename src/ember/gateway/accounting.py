"""What a forwarded answer cost, read from the bytes as they pass, without parsing the stream.

Ollama answers end with a final object carrying ``prompt_eval_count``, ``eval_count`` and ``done_reason``;
OpenAI answers carry ``usage`` (``prompt_tokens``, ``completion_tokens``) and ``finish_reason``. These fields are
at the end, so the tracker keeps only a bounded tail of the answer and searches it once, when the answer is
over. A quote inside a JSON string is always escaped, so the patterns cannot match text the model generated.

An OpenAI stream whose client did not ask for ``stream_options.include_usage`` has no usage: there the
completion count is the number of SSE events that carried text, one token each as the engine sends them,
and the prompt count is unknown (0).
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from dataclasses import dataclass

TAIL_BYTES = 256 * 1024  # holds a final NDJSON line with a long context array; answers are searched once

_PATTERNS = {
    "prompt": re.compile(rb'"(?:prompt_eval_count|prompt_tokens)":\s*(\d+)'),
    "completion": re.compile(rb'"(?:eval_count|completion_tokens)":\s*(\d+)'),
    "reason": re.compile(rb'"(?:done_reason|finish_reason)":\s*"([A-Za-z_]{1,32})"'),
}
_SSE_TEXT_EVENT = re.compile(rb'"(?:content|text)":\s*"(?:[^"\\]|\\.)')


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    done_reason: str | None

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageTracker:
    """Fed every chunk of one answer; ``usage()`` at the end. Also notes when the first byte came."""

    def __init__(self, *, sse: bool) -> None:
        self.sse = sse
        self.first_byte_at: float | None = None
        self._tail: deque[bytes] = deque()
        self._size = 0
        self._text_events = 0

    def feed(self, chunk: bytes) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()
        if self.sse:
            self._text_events += len(_SSE_TEXT_EVENT.findall(chunk))
        self._tail.append(chunk)
        self._size += len(chunk)
        while self._size - len(self._tail[0]) >= TAIL_BYTES:
            self._size -= len(self._tail.popleft())

    def usage(self) -> Usage:
        tail = b"".join(self._tail)
        prompt, completion, reason = (_last(pattern, tail) for pattern in _PATTERNS.values())
        if self.sse and completion is None:
            completion = str(self._text_events).encode()
        return Usage(prompt_tokens=int(prompt or 0), completion_tokens=int(completion or 0),
                     done_reason=reason.decode() if reason else None)


    def stream_error(self) -> str | None:
        """The message of an NDJSON answer that began with 200 and ended in an ``{"error": ...}`` line, as an
        Ollama pull of an unknown model does; None when it ended otherwise (the status alone would say 200)."""
        if self.sse:
            return None
        lines = b"".join(self._tail).rstrip().rsplit(b"\n", 1)
        last = lines[-1].strip()
        if not last.startswith(b'{"error"'):  # cheap test first: most answers end with a done line
            return None
        try:
            value = json.loads(last)
        except ValueError:
            return None
        error = value.get("error") if isinstance(value, dict) else None
        return str(error)[:500] if error else None

    def error_text(self) -> str | None:
        """The start of an error answer, for the audit row (engine errors are short JSON objects)."""
        text = b"".join(self._tail)[:500].decode("utf-8", "replace").strip()
        return text or None


def _last(pattern: re.Pattern[bytes], data: bytes) -> bytes | None:
    found = None
    for match in pattern.finditer(data):
        found = match.group(1)
    return found
