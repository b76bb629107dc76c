"""Reading a stored model's traits (template, capabilities, model_info) from its GGUF and layers."""

from __future__ import annotations

from typing import Any

from ember.engine.prompt import ModelTraits
from ember.store import LocalModel
from ember.store.gguf import model_info, read_gguf


def traits_for(model: LocalModel) -> ModelTraits:
    info = read_gguf(model.model_path)
    meta = info.metadata
    return ModelTraits(
        name=model.name.display,
        go_template=model.template,
        chat_template=info.chat_template,
        bos_text=_token_text(meta, "tokenizer.ggml.bos_token_id") if meta.get("tokenizer.ggml.add_bos_token",
                                                                              True) else "",
        eos_text=_token_text(meta, "tokenizer.ggml.eos_token_id"),
        embedding_only=f"{info.architecture}.pooling_type" in meta,
        has_projector=bool(model.projector_paths),
        model_info=model_info(info),
    )


def _token_text(meta: dict[str, Any], key: str) -> str:
    token_id = meta.get(key)
    tokens = meta.get("tokenizer.ggml.tokens")
    if isinstance(token_id, int) and isinstance(tokens, list) and 0 <= token_id < len(tokens):
        return str(tokens[token_id])
    return ""
