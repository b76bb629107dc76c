"""How much memory a loaded model needs: the sizing rule `ember doctor` and the deployment docs share.

    need = model file size + KV cache + overhead
    KV cache = num_ctx x num_parallel x n_layer x n_head_kv x (key_length + value_length) x bytes per element
    overhead = 256 MiB (the runner process and llama.cpp's compute buffers)

The KV cache is sized for every slot's full context, since llama.cpp allocates it up front. Sliding-window
layers (Gemma 3) need less than this, so the rule errs on the safe side for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OVERHEAD_BYTES = 256 << 20
# Bytes per KV cache element by EMBER_KV_CACHE_TYPE (q8_0 packs 32 values in 34 bytes, q4_0 in 18).
KV_ELEMENT_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


@dataclass(frozen=True)
class Need:
    file_bytes: int
    kv_bytes: int
    num_ctx: int
    num_parallel: int
    overhead_bytes: int = OVERHEAD_BYTES

    @property
    def total(self) -> int:
        return self.file_bytes + self.kv_bytes + self.overhead_bytes


def _int(metadata: dict[str, Any], key: str) -> int | None:
    value = metadata.get(key)
    if isinstance(value, list):  # per-layer arrays (some architectures): size for the largest layer
        value = max((v for v in value if isinstance(v, int)), default=None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def kv_bytes_per_token(metadata: dict[str, Any], kv_cache_type: str = "f16") -> int:
    """KV cache bytes one token takes in one sequence, from GGUF metadata; 0 when the metadata lacks it."""
    arch = metadata.get("general.architecture", "")
    layers = _int(metadata, f"{arch}.block_count")
    heads = _int(metadata, f"{arch}.attention.head_count")
    kv_heads = _int(metadata, f"{arch}.attention.head_count_kv") or heads
    embedding = _int(metadata, f"{arch}.embedding_length")
    if not (layers and heads and kv_heads and embedding):
        return 0
    key = _int(metadata, f"{arch}.attention.key_length") or embedding // heads
    value = _int(metadata, f"{arch}.attention.value_length") or key
    return int(layers * kv_heads * (key + value) * KV_ELEMENT_BYTES.get(kv_cache_type, 2.0))


def model_need(file_bytes: int, metadata: dict[str, Any], *, num_ctx: int, num_parallel: int,
               kv_cache_type: str = "f16") -> Need:
    trained = _int(metadata, f"{metadata.get('general.architecture', '')}.context_length")
    ctx = min(num_ctx, trained) if trained else num_ctx
    kv = kv_bytes_per_token(metadata, kv_cache_type) * ctx * num_parallel
    return Need(file_bytes=file_bytes, kv_bytes=kv, num_ctx=ctx, num_parallel=num_parallel)
