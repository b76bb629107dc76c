"""Which other slot a new prompt can take its prefix from: one prefill for a prompt start that many requests share.

A slot's KV cells can be copied into another sequence (llama_memory_seq_cp), so a prefix already evaluated
anywhere need not be evaluated again. When the longest match is a prompt another slot is reading right now,
waiting for it and copying afterwards beats evaluating the same tokens twice in parallel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

S = TypeVar("S")


@dataclass(frozen=True)
class SharePlan(Generic[S]):
    copy_from: S | None = None  # copy ``length`` cached positions of this slot now
    wait_for: S | None = None  # this slot is reading the shared part: copy once it has
    length: int = 0


def plan_share(
    others: Sequence[tuple[S, list[int], int | None, list[int]]],
    tokens: list[int],
    own: int,
    minimum: int,
) -> SharePlan[S]:
    """Plan for a prompt whose own slot already holds ``own`` of its tokens.

    ``others`` are (slot, cached tokens, exact bound after a context shift or None, tokens it is about to read).
    At most ``len(tokens) - 1`` tokens are shared: the last prompt token is evaluated for its logits.
    """
    cap = len(tokens) - 1
    ready: tuple[int, S | None] = (own, None)
    later: tuple[int, S | None] = (0, None)
    for slot, cached, exact, reading in others:
        now = min(common_prefix(cached, tokens), cap, cap if exact is None else exact)
        if now > ready[0]:
            ready = (now, slot)
        if reading and len(cached) == common_prefix(cached, tokens):
            soon = min(len(cached) + common_prefix(reading, tokens[len(cached):]), cap)
            if soon > later[0]:
                later = (soon, slot)
    if later[1] is not None and later[0] >= ready[0] + minimum:
        return SharePlan(wait_for=later[1], length=later[0])
    if ready[1] is not None and ready[0] >= own + minimum:
        return SharePlan(copy_from=ready[1], length=ready[0])
    return SharePlan(length=own)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
