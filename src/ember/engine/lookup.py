"""Prompt-lookup drafts: guess the next tokens by finding the latest n-gram earlier in the prompt or output.

Answers often copy spans of their prompt (quotes, code edits, summaries). When the last few tokens occurred
before, the tokens that followed them then are a cheap guess for what follows now. The batcher feeds the guess
along with the real next token in one decode and keeps only what the model's own sampling confirms, so the
output is exactly what plain decoding gives (no draft model: none small enough is installable here).
"""

from __future__ import annotations

NGRAM_MAX = 3
NGRAM_MIN = 2


def draft(history: list[int], limit: int) -> list[int]:
    """Up to ``limit`` tokens that followed the latest earlier occurrence of the longest matching tail n-gram."""
    if limit <= 0:
        return []
    for n in range(min(NGRAM_MAX, len(history) - 1), NGRAM_MIN - 1, -1):
        tail = history[-n:]
        # Latest occurrence first: recent context is the likelier continuation.
        for start in range(len(history) - n - 1, -1, -1):
            if history[start + n - 1] == tail[-1] and history[start:start + n] == tail:
                follow = history[start + n:start + n + limit]
                if follow:
                    return follow
    return []
