"""Log-probabilities of sampled tokens, from the logits llama.cpp left for a batch entry."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ember.engine.messages import TokenLogprob

MAX_TOP_LOGPROBS = 20  # as Ollama and OpenAI bound top_logprobs


def log_softmax(logits: np.ndarray) -> np.ndarray:
    # float64 and the max shift keep exp() from overflowing on large logits
    shifted = logits.astype(np.float64) - float(np.max(logits))
    result: np.ndarray = shifted - np.log(np.sum(np.exp(shifted)))
    return result


def token_logprob(logits: np.ndarray, chosen: int, top_n: int, piece: Callable[[int], bytes]) -> TokenLogprob:
    """The chosen token's entry, with the ``top_n`` likeliest tokens (most likely first) when ``top_n`` > 0."""
    logprobs = log_softmax(logits)
    top: tuple[TokenLogprob, ...] = ()
    if top_n > 0:
        n = min(top_n, len(logprobs))
        likeliest = np.argpartition(-logprobs, n - 1)[:n]
        likeliest = likeliest[np.lexsort((likeliest, -logprobs[likeliest]))]  # ties: lower token id first
        top = tuple(_entry(int(t), float(logprobs[t]), piece) for t in likeliest)
    entry = _entry(chosen, float(logprobs[chosen]), piece)
    return TokenLogprob(entry.token, entry.logprob, entry.bytes, top)


def _entry(token: int, logprob: float, piece: Callable[[int], bytes]) -> TokenLogprob:
    raw = piece(token)
    return TokenLogprob(raw.decode("utf-8", errors="replace"), logprob, raw)
