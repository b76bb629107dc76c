"""Thin wrapper over llama.cpp's C API (through llama_cpp's ctypes bindings). Runs only inside a runner.

Everything here is synchronous and owns C memory; the runner process is its only user.
"""

from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass
from typing import Any

import llama_cpp as L
import numpy as np

_KV_TYPES = {"f16": L.GGML_TYPE_F16, "q8_0": L.GGML_TYPE_Q8_0, "q4_0": L.GGML_TYPE_Q4_0}
_DEFAULT_SEED = 0xFFFFFFFF
# The pinned llama.cpp's penalties sampler takes the vocabulary size first; newer ones do not.
_PENALTIES_TAKE_VOCAB = len(L.llama_sampler_init_penalties.argtypes) == 5


@dataclass(frozen=True)
class ContextSpec:
    """What the runner's decode context is built with."""

    n_ctx_per_seq: int
    n_seq: int
    n_batch: int
    n_thread: int
    kv_cache_type: str = "f16"
    flash_attention: bool | None = None


def _silence_logs() -> None:
    # llama.cpp logs every tensor at load; keep the callback referenced so ctypes does not free it.
    global _LOG_CALLBACK
    _LOG_CALLBACK = L.llama_log_callback(lambda level, text, data: None)
    L.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


_LOG_CALLBACK: Any = None


def cpu_has_amx(cpuinfo: str = "/proc/cpuinfo") -> bool:
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            return any(line.startswith("flags") and " amx_int8" in line for line in f)
    except OSError:
        return False


class Model:
    """A loaded GGUF model: weights and vocabulary."""

    def __init__(self, path: str, adapters: list[str] | None = None, *, num_gpu: int = 0, quiet: bool = True) -> None:
        if quiet:
            _silence_logs()
        L.llama_backend_init()
        params = L.llama_model_default_params()
        params.n_gpu_layers = num_gpu
        # Weight repacking picks llama.cpp's AMX kernels on CPUs that have AMX, and those segfault in
        # the first prompt decode (llama.cpp issue 20824, unfixed); other CPUs keep the faster repack.
        params.use_extra_bufts = not cpu_has_amx()
        self.ptr = L.llama_model_load_from_file(path.encode(), params)
        if not self.ptr:
            raise RuntimeError(f"llama.cpp could not load the model file {path}")
        self.vocab = L.llama_model_get_vocab(self.ptr)
        self.n_ctx_train = int(L.llama_model_n_ctx_train(self.ptr))
        self.n_embd = int(L.llama_model_n_embd(self.ptr))
        self.size = int(L.llama_model_size(self.ptr))
        self.add_bos = bool(L.llama_vocab_get_add_bos(self.vocab))
        self.n_vocab = int(L.llama_vocab_n_tokens(self.vocab))
        self.adapters = [self._load_adapter(a) for a in adapters or []]

    def _load_adapter(self, path: str) -> Any:
        adapter = L.llama_adapter_lora_init(self.ptr, path.encode())
        if not adapter:
            raise RuntimeError(f"llama.cpp could not load the LoRA adapter {path}")
        return adapter

    def tokenize(self, text: str, add_special: bool = True, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8", "replace")  # a lone surrogate must not take the runner down
        capacity = len(data) + 8
        buf = (L.llama_token * capacity)()
        n = L.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        if n < 0:
            capacity = -n
            buf = (L.llama_token * capacity)()
            n = L.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_special, parse_special)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = L.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = L.llama_token_to_piece(self.vocab, token, buf, -n, 0, False)
        return buf.raw[:n]

    def is_eog(self, token: int) -> bool:
        return bool(L.llama_vocab_is_eog(self.vocab, token))

    def close(self) -> None:
        if self.ptr:
            L.llama_model_free(self.ptr)
            self.ptr = None


class Context:
    """A llama.cpp context with ``n_seq`` independent sequences sharing one KV cache allocation."""

    def __init__(self, model: Model, spec: ContextSpec, *, embeddings: bool = False) -> None:
        params = L.llama_context_default_params()
        params.n_ctx = spec.n_ctx_per_seq * spec.n_seq
        params.n_batch = spec.n_batch
        params.n_ubatch = spec.n_batch
        params.n_seq_max = spec.n_seq
        params.n_threads = spec.n_thread
        params.n_threads_batch = spec.n_thread
        params.kv_unified = False
        params.no_perf = True
        params.type_k = _KV_TYPES[spec.kv_cache_type]
        params.type_v = _KV_TYPES[spec.kv_cache_type]
        params.flash_attn_type = (
            L.LLAMA_FLASH_ATTN_TYPE_ENABLED if _wants_flash_attention(spec) else L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        if embeddings:
            params.embeddings = True
            params.pooling_type = L.LLAMA_POOLING_TYPE_MEAN
        self.ptr = L.llama_init_from_model(model.ptr, params)
        if not self.ptr:
            raise RuntimeError("llama.cpp could not create a context (out of memory?)")
        self.memory = L.llama_get_memory(self.ptr)
        self.n_ctx_per_seq = spec.n_ctx_per_seq
        if model.adapters:
            count = len(model.adapters)
            arr = (ctypes.c_void_p * count)(*model.adapters)
            scales = (ctypes.c_float * count)(*([1.0] * count))
            L.llama_set_adapters_lora(self.ptr, ctypes.cast(arr, ctypes.POINTER(ctypes.c_void_p)), count, scales)

    def drop(self, seq: int, start: int = 0) -> None:
        """Forget the sequence's KV entries from ``start`` on."""
        L.llama_memory_seq_rm(self.memory, seq, start, -1)

    def copy_prefix(self, src: int, dst: int, length: int) -> None:
        """Make ``dst`` hold the first ``length`` cached positions of ``src`` (whatever ``dst`` held is lost).

        With one KV stream per sequence (kv_unified off) llama.cpp copies only whole streams, so the full range
        is copied (the buffer copy happens at the next decode) and the tail cut off afterwards.
        """
        L.llama_memory_seq_cp(self.memory, src, dst, -1, -1)
        L.llama_memory_seq_rm(self.memory, dst, length, -1)

    def shift(self, seq: int, keep: int, discard: int) -> bool:
        """Forget ``discard`` tokens after the first ``keep`` and move the rest back; False if the cache cannot."""
        if not L.llama_memory_can_shift(self.memory):
            return False
        L.llama_memory_seq_rm(self.memory, seq, keep, keep + discard)
        L.llama_memory_seq_add(self.memory, seq, keep + discard, -1, -discard)
        return True

    def decode(self, batch: Batch) -> None:
        status = L.llama_decode(self.ptr, batch.ptr)
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")

    def logits(self, index: int, n_vocab: int) -> np.ndarray:
        """The logits of batch entry ``index`` of the last decode (a view: read it before the next decode)."""
        ptr = L.llama_get_logits_ith(self.ptr, index)
        if not ptr:
            raise RuntimeError("llama.cpp returned no logits")
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,))

    def embedding(self, seq: int, n_embd: int) -> list[float]:
        ptr = L.llama_get_embeddings_seq(self.ptr, seq)
        if not ptr:
            raise RuntimeError("llama.cpp returned no embedding")
        return list(ptr[:n_embd])

    def close(self) -> None:
        if self.ptr:
            L.llama_free(self.ptr)
            self.ptr = None


def _wants_flash_attention(spec: ContextSpec) -> bool:
    if spec.flash_attention is not None:
        return spec.flash_attention
    # Off by default (as in Ollama): on CPUs llama.cpp's flash attention made a 27-token prompt at position
    # 2048 take 1.3 s instead of 0.3 s. A quantized V cache cannot work without it.
    return spec.kv_cache_type != "f16"


class Batch:
    """A reusable llama_batch; entries are (token, position, sequence, wants_logits)."""

    def __init__(self, capacity: int, n_seq: int) -> None:
        self.capacity = capacity
        self.ptr = L.llama_batch_init(capacity, 0, n_seq)
        self.n = 0

    def clear(self) -> None:
        self.n = 0
        self.ptr.n_tokens = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        i = self.n
        b = self.ptr
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = logits
        self.n += 1
        b.n_tokens = self.n
        return i

    def close(self) -> None:
        L.llama_batch_free(self.ptr)


class Sampler:
    """A llama.cpp sampler chain built from a request's sampling options."""

    def __init__(self, model: Model, opts: dict[str, Any]) -> None:
        self.n_vocab = model.n_vocab
        params = L.llama_sampler_chain_default_params()
        params.no_perf = True
        self.ptr = L.llama_sampler_chain_init(params)
        grammar = grammar_for(opts.get("format"))
        if grammar:
            g = L.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
            if not g:
                raise ValueError("format could not be compiled to a grammar")
            self._add(g)
        self._add_penalties(opts)
        temperature = float(opts.get("temperature", 0.8))
        if temperature <= 0:
            self._add(L.llama_sampler_init_greedy())
            return
        self._add(L.llama_sampler_init_top_k(int(opts.get("top_k", 40))))
        if float(opts.get("typical_p", 1.0)) < 1.0:
            self._add(L.llama_sampler_init_typical(float(opts["typical_p"]), 1))
        self._add(L.llama_sampler_init_top_p(float(opts.get("top_p", 0.9)), 1))
        if float(opts.get("min_p", 0.0)) > 0.0:
            self._add(L.llama_sampler_init_min_p(float(opts["min_p"]), 1))
        self._add(L.llama_sampler_init_temp(temperature))
        seed = int(opts.get("seed", -1))
        self._add(L.llama_sampler_init_dist(_DEFAULT_SEED if seed < 0 else seed & 0xFFFFFFFF))

    def _add_penalties(self, opts: dict[str, Any]) -> None:
        repeat = float(opts.get("repeat_penalty", 1.0))
        freq = float(opts.get("frequency_penalty", 0.0))
        presence = float(opts.get("presence_penalty", 0.0))
        if repeat != 1.0 or freq != 0.0 or presence != 0.0:
            args: tuple[Any, ...] = (int(opts.get("repeat_last_n", 64)), repeat, freq, presence)
            if _PENALTIES_TAKE_VOCAB:
                args = (self.n_vocab, *args)
            self._add(L.llama_sampler_init_penalties(*args))

    def _add(self, sampler: Any) -> None:
        L.llama_sampler_chain_add(self.ptr, sampler)

    def sample(self, ctx: Context, index: int) -> int:
        return int(L.llama_sampler_sample(self.ptr, ctx.ptr, index))

    def close(self) -> None:
        if self.ptr:
            L.llama_sampler_free(self.ptr)
            self.ptr = None


def grammar_for(fmt: Any) -> str | None:
    """GBNF for Ollama's ``format``: "json" (any JSON value) or a JSON schema object."""
    if fmt is None or fmt == "":
        return None
    from llama_cpp import llama_grammar

    if fmt == "json":
        return str(llama_grammar.JSON_GBNF)
    if isinstance(fmt, dict):
        try:
            return str(llama_grammar.json_schema_to_gbnf(json.dumps(fmt)))
        except Exception as exc:
            raise ValueError(f"invalid JSON schema in format: {exc}") from None
    raise ValueError('format must be "json" or a JSON schema object')
