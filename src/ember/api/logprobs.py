"""Token log-probabilities in each API's wire shape."""

from __future__ import annotations

from typing import Any

from ember.engine.messages import TokenLogprob


def _entry(lp: TokenLogprob) -> dict[str, Any]:
    return {"token": lp.token, "logprob": lp.logprob, "bytes": list(lp.bytes)}


def ollama_logprobs(logprobs: list[TokenLogprob]) -> list[dict[str, Any]]:
    """Ollama's ``logprobs`` array; ``top_logprobs`` only when some were asked for (Go's omitempty)."""
    out = []
    for lp in logprobs:
        entry = _entry(lp)
        if lp.top:
            entry["top_logprobs"] = [_entry(t) for t in lp.top]
        out.append(entry)
    return out


def openai_chat_logprobs(logprobs: list[TokenLogprob]) -> dict[str, Any]:
    """A chat choice's ``logprobs`` object: ``{"content": [...]}``, every entry with its ``top_logprobs`` list."""
    return {"content": [{**_entry(lp), "top_logprobs": [_entry(t) for t in lp.top]} for lp in logprobs],
            "refusal": None}


def openai_completion_logprobs(logprobs: list[TokenLogprob], text_offset: int) -> dict[str, Any]:
    """The legacy completions shape: parallel lists, and each top list as a token -> logprob mapping."""
    offsets = []
    for lp in logprobs:
        offsets.append(text_offset)
        text_offset += len(lp.token)
    return {
        "tokens": [lp.token for lp in logprobs],
        "token_logprobs": [lp.logprob for lp in logprobs],
        "top_logprobs": [{t.token: t.logprob for t in lp.top} for lp in logprobs],
        "text_offset": offsets,
    }
