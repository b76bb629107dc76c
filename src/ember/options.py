"""Ollama's ``options`` object: names, types, defaults, and the merge of Modelfile and request values.

Unknown and legacy keys are dropped (with a debug log), floats are accepted for integer fields, and
``null`` values are skipped, because LangChain, Open WebUI and the Python client send all of these.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ember.errors import BadRequest

log = logging.getLogger(__name__)

# name -> type ("int", "float", "bool", "stop")
OPTION_TYPES: dict[str, str] = {
    "num_ctx": "int",
    "num_batch": "int",
    "num_gpu": "int",
    "main_gpu": "int",
    "use_mmap": "bool",
    "num_thread": "int",
    "num_keep": "int",
    "seed": "int",
    "num_predict": "int",
    "top_k": "int",
    "top_p": "float",
    "min_p": "float",
    "typical_p": "float",
    "repeat_last_n": "int",
    "temperature": "float",
    "repeat_penalty": "float",
    "presence_penalty": "float",
    "frequency_penalty": "float",
    "stop": "stop",
}

MIN_NUM_CTX = 64  # below this no chat template and answer fit; llama.cpp hangs or fails on tiny contexts
MAX_NUM_CTX = 1 << 20
MAX_STOP_SEQUENCES = 64
MAX_STOP_LENGTH = 1024

# Inclusive ranges: a value outside is a 400 naming the option and the range, before any work is done,
# so nothing reaches llama.cpp that it could crash or hang on. -1/-2 keep their Ollama meanings.
OPTION_RANGES: dict[str, tuple[float, float]] = {
    "num_ctx": (MIN_NUM_CTX, MAX_NUM_CTX),
    "num_batch": (1, 1 << 16),
    "num_gpu": (-1, 1 << 10),
    "main_gpu": (0, 64),
    "num_thread": (0, 1 << 10),
    "num_keep": (-1, MAX_NUM_CTX),
    "seed": (-(1 << 63), (1 << 64) - 1),
    "num_predict": (-2, 1 << 31),
    "top_k": (-1, 1 << 20),
    "top_p": (0.0, 1.0),
    "min_p": (0.0, 1.0),
    "typical_p": (0.0, 1.0),
    "repeat_last_n": (-1, MAX_NUM_CTX),
    "temperature": (0.0, 100.0),
    "repeat_penalty": (0.0, 100.0),
    "presence_penalty": (-100.0, 100.0),
    "frequency_penalty": (-100.0, 100.0),
}

# Accepted and ignored: removed from Ollama over time, still sent by clients.
LEGACY_OPTIONS = frozenset({
    "mirostat", "mirostat_tau", "mirostat_eta", "tfs_z", "penalize_newline", "numa", "low_vram", "f16_kv",
    "logits_all", "vocab_only", "use_mlock", "num_gqa", "rope_frequency_base", "rope_frequency_scale",
    "embedding_only", "draft_num_predict",
})


def coerce_option(name: str, value: Any) -> Any:
    """Convert one option value to its declared type, or raise BadRequest naming the option."""
    kind = OPTION_TYPES[name]
    if kind == "stop":
        return _stop_list(name, value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise BadRequest(f'option "{name}" must be of type boolean')
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f'option "{name}" must be of type {"integer" if kind == "int" else "float"}')
    number = int(value) if kind == "int" else float(value)
    low, high = OPTION_RANGES[name]
    if not low <= number <= high:
        raise BadRequest(f'option "{name}" must be between {_show(low, kind)} and {_show(high, kind)}, got {value}')
    return number


def _show(bound: float, kind: str) -> str:
    return str(int(bound)) if kind == "int" else f"{bound:g}"


def _stop_list(name: str, value: Any) -> list[str]:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(v, str) for v in stops):
        raise BadRequest(f'option "{name}" must be of type array of strings')
    if len(stops) > MAX_STOP_SEQUENCES or any(len(s) > MAX_STOP_LENGTH for s in stops):
        raise BadRequest(f'option "{name}" allows at most {MAX_STOP_SEQUENCES} strings of at most '
                         f"{MAX_STOP_LENGTH} characters")
    return list(stops)


def parse_options(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Typed options from a request/Modelfile mapping; unknown, legacy and null keys are dropped."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise BadRequest("options must be an object")
    parsed: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue
        if name not in OPTION_TYPES:
            if name not in LEGACY_OPTIONS:
                log.debug("ignoring unknown option %r", name)
            continue
        parsed[name] = coerce_option(name, value)
    return parsed


@dataclass(frozen=True)
class Sampling:
    """Per-request sampling parameters, after Modelfile defaults and request options are merged."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    typical_p: float = 1.0
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int = -1
    num_predict: int = -1
    num_keep: int = 4
    stop: tuple[str, ...] = ()
    grammar: str | None = None


SAMPLING_FIELDS = frozenset(f for f in Sampling.__dataclass_fields__ if f not in ("stop", "grammar"))


def merge_options(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win. Each layer must already be parsed."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
    return merged


def sampling_from(options: Mapping[str, Any], *, max_predict: int, grammar: str | None = None) -> Sampling:
    """Build Sampling from merged options, applying the server-wide cap on generated tokens."""
    values = {k: v for k, v in options.items() if k in SAMPLING_FIELDS}
    sampling = Sampling(**values, stop=tuple(options.get("stop", ())), grammar=grammar)
    predict = sampling.num_predict
    if predict < 0 or predict > max_predict:
        predict = max_predict
    return replace(sampling, num_predict=predict)
