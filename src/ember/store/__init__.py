"""The model store: Ollama's blobs/ + manifests/ layout, GGUF metadata, model creation.

Layout, atomicity guarantees and the API are described in docs/store.md.
"""

from __future__ import annotations

from ember.store.digests import digest_hex, normalize_digest
from ember.store.gguf import GGUFInfo, TensorInfo, model_info, read_gguf
from ember.store.model import LocalModel
from ember.store.store import ModelStore

__all__ = [
    "GGUFInfo",
    "LocalModel",
    "ModelStore",
    "TensorInfo",
    "digest_hex",
    "model_info",
    "normalize_digest",
    "read_gguf",
]
