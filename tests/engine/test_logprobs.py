"""Log-probability arithmetic on plain arrays (the real model's values are checked in tests/api)."""

from __future__ import annotations

import math

import numpy as np

from ember.engine.logprobs import log_softmax, token_logprob


def piece(token: int) -> bytes:
    return f"t{token}".encode()


def test_log_softmax_is_a_distribution_even_for_huge_logits() -> None:
    values = log_softmax(np.array([1000.0, 999.0, -1000.0], dtype=np.float32))
    assert math.isclose(float(np.exp(values).sum()), 1.0, rel_tol=1e-9)
    assert math.isclose(float(values[0] - values[1]), 1.0, rel_tol=1e-6)
    assert np.all(values <= 0)


def test_the_chosen_token_and_the_likeliest_in_order() -> None:
    logits = np.array([0.5, 3.0, -2.0, 2.0, 3.0], dtype=np.float32)
    entry = token_logprob(logits, chosen=3, top_n=3, piece=piece)
    expected = logits[3] - math.log(sum(math.exp(x) for x in logits))
    assert entry.token == "t3" and entry.bytes == b"t3"
    assert math.isclose(entry.logprob, expected, rel_tol=1e-6)
    assert [t.token for t in entry.top] == ["t1", "t4", "t3"], "ties keep token order; most likely first"
    assert entry.top[2].logprob == entry.logprob


def test_no_top_list_unless_asked_and_never_longer_than_the_vocabulary() -> None:
    logits = np.array([0.0, 1.0], dtype=np.float32)
    assert token_logprob(logits, 0, 0, piece).top == ()
    assert len(token_logprob(logits, 0, 20, piece).top) == 2
