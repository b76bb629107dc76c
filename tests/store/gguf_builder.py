"""Builds small GGUF files byte by byte (from the spec) so tests can make valid and broken inputs."""

from __future__ import annotations

import struct
from typing import Any

TYPE_IDS = {"u8": 0, "i8": 1, "u16": 2, "i16": 3, "u32": 4, "i32": 5, "f32": 6, "bool": 7, "str": 8,
            "arr": 9, "u64": 10, "i64": 11, "f64": 12}
FORMATS = {"u8": "B", "i8": "b", "u16": "H", "i16": "h", "u32": "I", "i32": "i", "f32": "f", "u64": "Q",
           "i64": "q", "f64": "d", "bool": "?"}


def gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def encode_value(kind: str, value: Any) -> bytes:
    if kind == "str":
        return gguf_string(value)
    if kind.startswith("arr:"):
        inner = kind[4:]
        body = b"".join(encode_value(inner, v) for v in value)
        return struct.pack("<IQ", TYPE_IDS[inner.split(":")[0]], len(value)) + body
    return struct.pack("<" + FORMATS[kind], value)


def kv(key: str, kind: str, value: Any) -> bytes:
    return gguf_string(key) + struct.pack("<I", TYPE_IDS[kind.split(":")[0]]) + encode_value(kind, value)


def tensor_info(name: str, dims: tuple[int, ...], ggml_type: int, offset: int) -> bytes:
    return (gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<IQ", ggml_type, offset))


def build_gguf(kvs: list[bytes], tensors: list[bytes] | None = None, *, version: int = 3,
               data: bytes = b"", n_kv: int | None = None, n_tensors: int | None = None) -> bytes:
    tensors = tensors or []
    header = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                   len(kvs) if n_kv is None else n_kv)
    body = header + b"".join(kvs) + b"".join(tensors)
    padding = (-len(body)) % 32
    return body + b"\0" * padding + data


def tiny_model(arch: str = "llama", *, rows: int = 4, cols: int = 8) -> bytes:
    """A structurally valid GGUF with one F32 tensor (not loadable by llama.cpp: no real weights)."""
    kvs = [kv("general.architecture", "str", arch), kv("general.name", "str", "tiny"),
           kv(f"{arch}.context_length", "u32", 256), kv(f"{arch}.embedding_length", "u32", cols),
           kv("general.file_type", "u32", 0)]
    return build_gguf(kvs, [tensor_info("w", (cols, rows), 0, 0)], data=b"\0" * (rows * cols * 4))


def tiny_llama(n_embd: int = 64, n_ff: int = 128, n_vocab: int = 32) -> bytes:
    """An F32 one-block llama with zero weights: enough for llama.cpp's quantizer, useless for text."""
    kvs = [kv("general.architecture", "str", "llama"), kv("general.file_type", "u32", 0),
           kv("llama.block_count", "u32", 1), kv("llama.context_length", "u32", 128),
           kv("llama.embedding_length", "u32", n_embd), kv("llama.feed_forward_length", "u32", n_ff),
           kv("llama.attention.head_count", "u32", 2), kv("llama.attention.head_count_kv", "u32", 2),
           kv("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5)]
    square = (n_embd, n_embd)
    shapes = {"token_embd.weight": (n_embd, n_vocab), "output_norm.weight": (n_embd,),
              "blk.0.attn_norm.weight": (n_embd,), "blk.0.ffn_norm.weight": (n_embd,),
              "blk.0.attn_q.weight": square, "blk.0.attn_k.weight": square, "blk.0.attn_v.weight": square,
              "blk.0.attn_output.weight": square, "blk.0.ffn_gate.weight": (n_embd, n_ff),
              "blk.0.ffn_up.weight": (n_embd, n_ff), "blk.0.ffn_down.weight": (n_ff, n_embd)}
    infos, offset = [], 0
    for name, dims in shapes.items():
        infos.append(tensor_info(name, dims, 0, offset))
        count = 1
        for dim in dims:
            count *= dim
        offset += -(-count * 4 // 32) * 32  # each tensor's data starts 32-byte aligned
    return build_gguf(kvs, infos, data=b"\0" * offset)
