"""A GGUF metadata reader: header, key/value pairs and tensor infos, never the tensor data.

Format (little-endian): magic ``GGUF``, uint32 version (2 or 3), uint64 tensor count, uint64 KV count,
then the KV pairs (string key, uint32 value type, value), then per tensor: string name, uint32 n_dims,
uint64 dims[n_dims], uint32 ggml type, uint64 offset relative to the aligned start of the data section.
Strings are a uint64 length followed by UTF-8 bytes.

The file is memory-mapped, so only the pages the header touches are read. Every length and count is
checked against the bytes that remain before anything is allocated: a corrupt or hostile file fails
fast with ``BadGGUF`` instead of hanging or allocating gigabytes.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ember.errors import BadGGUF

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ARRAY_NESTING = 4

# value type id -> (struct format, size); 7 = bool, 8 = string, 9 = array are handled separately
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("B", 1), 1: ("b", 1), 2: ("H", 2), 3: ("h", 2), 4: ("I", 4), 5: ("i", 4),
    6: ("f", 4), 10: ("Q", 8), 11: ("q", 8), 12: ("d", 8),
}
_FLOAT32, _BOOL, _STRING, _ARRAY = 6, 7, 8, 9

# llama_ftype (general.file_type) -> the names Ollama shows as quantization_level.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4",
}

# ggml tensor type -> name, for /api/show's tensor list and as a fallback quantization name.
TENSOR_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
    11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
    19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
    27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}

# ggml type -> (elements per block, bytes per block) for the long-established types only; tensors of
# other types are not size-checked, so a newer type never makes a valid file look broken.
_BLOCK_SIZES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 30: (1, 2), 28: (1, 8), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8),
    2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
}



@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]
    type: int
    offset: int

    @property
    def n_dims(self) -> int:
        return len(self.dims)

    @property
    def n_elements(self) -> int:
        count = 1
        for dim in self.dims:
            count *= dim
        return count

    @property
    def type_name(self) -> str:
        return TENSOR_TYPES.get(self.type, f"type{self.type}")

    @property
    def n_bytes(self) -> int | None:
        """Size of the tensor data, or None for types this reader does not know the block size of."""
        block = _BLOCK_SIZES.get(self.type)
        if block is None:
            return None
        per_block, block_bytes = block
        return -(-self.n_elements // per_block) * block_bytes


@dataclass
class GGUFInfo:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0

    @property
    def architecture(self) -> str:
        arch = self.metadata.get("general.architecture")
        return arch if isinstance(arch, str) else ""

    def _arch_int(self, suffix: str) -> int | None:
        value = self.metadata.get(f"{self.architecture}.{suffix}")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def context_length(self) -> int | None:
        return self._arch_int("context_length")

    @property
    def embedding_length(self) -> int | None:
        return self._arch_int("embedding_length")

    @property
    def chat_template(self) -> str | None:
        template = self.metadata.get("tokenizer.chat_template")
        return template if isinstance(template, str) else None

    @property
    def file_type_name(self) -> str:
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int) and file_type in FILE_TYPES:
            return FILE_TYPES[file_type]
        return self._dominant_tensor_type()

    def _dominant_tensor_type(self) -> str:
        """Without general.file_type, name the type holding most weights (e.g. ``Q4_K``)."""
        totals: dict[int, int] = {}
        for tensor in self.tensors:
            if tensor.n_dims >= 2:
                totals[tensor.type] = totals.get(tensor.type, 0) + tensor.n_elements
        if not totals:
            return "unknown"
        return TENSOR_TYPES.get(max(totals, key=lambda t: totals[t]), "unknown")

    @property
    def parameter_count(self) -> int:
        return sum(tensor.n_elements for tensor in self.tensors)

    @property
    def parameter_size(self) -> str:
        return human_number(self.parameter_count)


def human_number(count: int) -> str:
    """Ollama's parameter-size format: ``134.52M``, ``268M``, ``3.2B``, ``7B``, ``12K``."""
    for unit, scale, digits in (("B", 1_000_000_000, 1), ("M", 1_000_000, 2)):
        if count >= scale:
            value = count / scale
            if value == int(value):
                return f"{int(value)}{unit}"
            return f"{value:.{digits}f}{unit}"
    if count >= 1_000:
        return f"{round(count / 1_000)}K"
    return str(count)


def read_gguf(path: Path | str) -> GGUFInfo:
    """Read the metadata and tensor infos of a GGUF file; raise BadGGUF if it is not a valid one."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size = _file_size(handle.fileno())
            if size < 24:
                raise BadGGUF(path, f"file is truncated ({size} bytes, too short for a GGUF header)")
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _Parser(path, data, size).parse()
    except OSError as exc:
        raise BadGGUF(path, f"cannot read the file: {exc.strerror or exc}") from None


def _file_size(fd: int) -> int:
    return os.fstat(fd).st_size


def _short_float32(value: float) -> float:
    """The shortest decimal that is the same float32, so 1e-05 is not shown as 9.999999747378752e-06."""
    exact = struct.pack("<f", value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == exact:
            return candidate
    return value


class _Parser:
    def __init__(self, path: Path, data: mmap.mmap, size: int) -> None:
        self.path = path
        self.data = data
        self.size = size
        self.pos = 0

    def fail(self, problem: str) -> BadGGUF:
        return BadGGUF(self.path, problem)

    def parse(self) -> GGUFInfo:
        if self.data[:4] != MAGIC:
            raise self.fail("not a GGUF file (bad magic bytes)")
        self.pos = 4
        version = self.u32()
        if version not in SUPPORTED_VERSIONS:
            if struct.unpack("<I", struct.pack(">I", version))[0] in SUPPORTED_VERSIONS:
                raise self.fail("big-endian GGUF files are not supported")
            raise self.fail(f"unsupported GGUF version {version} (supported: 2, 3)")
        n_tensors, n_kv = self.u64(), self.u64()
        # Every KV pair needs at least 12 bytes and every tensor info at least 24: reject absurd counts now.
        self.need(n_kv * 12 + n_tensors * 24, f"{n_kv} metadata entries and {n_tensors} tensors")
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = self.string()
            metadata[key] = self.value(self.u32(), depth=0)
        tensors = [self.tensor_info() for _ in range(n_tensors)]
        info = GGUFInfo(self.path, version, metadata, tensors, self.data_start(metadata))
        self.check_tensor_data(info)
        return info

    def need(self, count: int, what: str) -> None:
        if count < 0 or self.pos + count > self.size:
            raise self.fail(f"file is truncated or corrupt: {what} at byte {self.pos} runs past the end "
                            f"of the file ({self.size} bytes)")

    def unpack(self, fmt: str, size: int) -> Any:
        self.need(size, "a value")
        value = struct.unpack_from("<" + fmt, self.data, self.pos)[0]
        self.pos += size
        return value

    def u32(self) -> int:
        value: int = self.unpack("I", 4)
        return value

    def u64(self) -> int:
        value: int = self.unpack("Q", 8)
        return value

    def string(self) -> str:
        length = self.u64()
        self.need(length, f"a string of {length} bytes")
        raw = self.data[self.pos:self.pos + length]
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int, depth: int) -> Any:
        if kind == _FLOAT32:
            return _short_float32(self.unpack("f", 4))
        if kind in _SCALARS:
            fmt, size = _SCALARS[kind]
            return self.unpack(fmt, size)
        if kind == _BOOL:
            return bool(self.unpack("B", 1))
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            return self.array(depth)
        raise self.fail(f"unknown metadata value type {kind} at byte {self.pos - 4}")

    def array(self, depth: int) -> list[Any]:
        if depth >= MAX_ARRAY_NESTING:
            raise self.fail("metadata arrays are nested too deeply")
        kind, count = self.u32(), self.u64()
        if kind in _SCALARS:
            fmt, size = _SCALARS[kind]
            self.need(count * size, f"an array of {count} values")
            values = list(struct.unpack_from(f"<{count}{fmt}", self.data, self.pos))
            self.pos += count * size
            return values
        # strings need >= 8 bytes each, bools 1, nested arrays 12: a bound that stops absurd counts early
        self.need(count * {_STRING: 8, _BOOL: 1}.get(kind, 12), f"an array of {count} values")
        if kind == _STRING:
            return [self.string() for _ in range(count)]
        return [self.value(kind, depth + 1) for _ in range(count)]

    def tensor_info(self) -> TensorInfo:
        name = self.string()
        n_dims = self.u32()
        if n_dims > MAX_DIMS:
            raise self.fail(f"tensor {name!r} has {n_dims} dimensions (at most {MAX_DIMS} are allowed)")
        dims = tuple(self.u64() for _ in range(n_dims))
        tensor_type = self.u32()
        return TensorInfo(name=name, dims=dims, type=tensor_type, offset=self.u64())

    def data_start(self, metadata: dict[str, Any]) -> int:
        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise self.fail(f"general.alignment must be a power of two, got {alignment!r}")
        return -(-self.pos // alignment) * alignment

    def check_tensor_data(self, info: GGUFInfo) -> None:
        """A file cut short inside its tensor data has an intact header; catch it by the tensors' extent."""
        for tensor in info.tensors:
            n_bytes = tensor.n_bytes
            end = info.data_offset + tensor.offset + (n_bytes or 0)
            if end > self.size:
                raise self.fail(f"file is truncated: tensor {tensor.name!r} ends at byte {end} but the file "
                                f"has {self.size} bytes")


def model_info(info: GGUFInfo, verbose: bool = False) -> dict[str, Any]:
    """The ``model_info`` object of /api/show: GGUF metadata, long arrays elided unless verbose."""
    result: dict[str, Any] = {}
    for key, value in info.metadata.items():
        if key in ("general.name", "tokenizer.chat_template"):
            continue
        if isinstance(value, list) and len(value) > 5 and not verbose:
            value = []
        result[key] = value
    result.setdefault("general.parameter_count", info.parameter_count)
    return result
