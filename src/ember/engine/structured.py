"""Structured output within the token budget: end a ``format`` answer validly before ``num_predict`` cuts it.

After each sampled token the batcher asks ``admit``: would the answer, with this token, still be closable
in the tokens that are left? If yes the token is kept. If not, the token is dropped and the answer ends
with the closing text of the state before it, whose cost was checked to fit one step earlier, so the
forced tokens never take the answer past ``num_predict``. No free sampling happens after that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ember.engine.json_close import JsonTracker

Tokenize = Callable[[str], list[int]]


@dataclass(frozen=True)
class Closing:
    """The end the closing logic forces: its text and the tokens that spell it (possibly none)."""

    text: str
    tokens: list[int]


class ClosingBudget:
    def __init__(self, fmt: Any, tokenize: Tokenize) -> None:
        self.tracker = JsonTracker.for_format(fmt)
        self.tokenize = tokenize
        self._costs: dict[str, list[int]] = {}

    def admit(self, text: str, used: int, limit: int) -> Closing | None:
        """``text`` is the new token's text and ``used`` the tokens generated with it; None keeps the token."""
        if self.tracker.lost:
            return None  # the answer left the grammar the tracker knows: nothing can be promised
        try:
            return self._admit(text, used, limit)
        except Exception:  # a schema the tracker trips over must cost this request its promise, nothing more
            self.tracker.lost = True
            return None

    def _admit(self, text: str, used: int, limit: int) -> Closing | None:
        candidate = self.tracker.copy()
        candidate.feed(text)
        after = candidate.closing()
        if after is None or used + len(self._tokens(after)) <= limit:
            self.tracker = candidate
            return None
        now = self.tracker.closing()
        if now is None:
            return None
        return Closing(now, self._tokens(now))

    def _tokens(self, text: str) -> list[int]:
        found = self._costs.get(text)
        if found is None:
            found = self._costs[text] = self.tokenize(text) if text else []
        return found
