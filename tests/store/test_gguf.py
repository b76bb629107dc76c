from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest

from ember.errors import BadGGUF, BadRequest
from ember.store.gguf import human_number, model_info, read_gguf
from tests.conftest_models import gemma_gguf_path, smollm2_gguf_path
from tests.store.gguf_builder import build_gguf, gguf_string, kv, tensor_info, tiny_model


def write(tmp_path: Path, data: bytes, name: str = "m.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_smollm2_metadata() -> None:
    info = read_gguf(smollm2_gguf_path())
    assert info.version == 3
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert info.embedding_length == 576
    assert info.file_type_name == "Q4_1"
    assert info.parameter_count == 134_515_008
    assert info.parameter_size == "134.52M"
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert len(info.metadata["tokenizer.ggml.tokens"]) == 49152
    assert info.metadata["tokenizer.ggml.tokens"][2] == "<|im_end|>"
    assert info.metadata["llama.attention.layer_norm_rms_epsilon"] == 1e-05  # shortest float32 form


def test_gemma_metadata_and_tensors() -> None:
    path = gemma_gguf_path()
    info = read_gguf(path)
    assert info.architecture == "gemma3"
    assert info.context_length == 32768
    assert info.file_type_name == "Q4_K_M"
    assert info.parameter_size == "268.10M"
    assert info.chat_template is None
    # tensor infos are complete: the last tensor's data ends exactly at the end of the file
    ends = [info.data_offset + t.offset + (t.n_bytes or 0) for t in info.tensors]
    assert max(ends) == os.path.getsize(path)
    assert {t.type_name for t in info.tensors} >= {"F32", "Q4_K", "Q6_K"}


def test_model_info_elides_long_arrays_unless_verbose() -> None:
    info = read_gguf(smollm2_gguf_path())
    short = model_info(info)
    assert "general.name" not in short and "tokenizer.chat_template" not in short
    assert short["tokenizer.ggml.tokens"] == []
    assert short["general.languages"] == ["en"]  # short arrays stay
    assert short["general.parameter_count"] == 134_515_008
    assert short["llama.context_length"] == 8192
    assert len(model_info(info, verbose=True)["tokenizer.ggml.tokens"]) == 49152


def test_all_value_types_round_trip(tmp_path: Path) -> None:
    kvs = [kv("u8", "u8", 255), kv("i8", "i8", -1), kv("u16", "u16", 65535), kv("i16", "i16", -2),
           kv("u32", "u32", 2**32 - 1), kv("i32", "i32", -3), kv("f32", "f32", 0.5), kv("b", "bool", True),
           kv("s", "str", "héllo"), kv("u64", "u64", 2**64 - 1), kv("i64", "i64", -(2**63)),
           kv("f64", "f64", 0.1), kv("arr", "arr:i32", [1, -2, 3]), kv("strs", "arr:str", ["a", "b"]),
           kv("nested", "arr:arr:u8", [[1, 2], [3]]), kv("bools", "arr:bool", [True, False])]
    info = read_gguf(write(tmp_path, build_gguf(kvs, version=2)))
    assert info.version == 2
    assert info.metadata == {"u8": 255, "i8": -1, "u16": 65535, "i16": -2, "u32": 2**32 - 1, "i32": -3,
                             "f32": 0.5, "b": True, "s": "héllo", "u64": 2**64 - 1, "i64": -(2**63),
                             "f64": 0.1, "arr": [1, -2, 3], "strs": ["a", "b"], "nested": [[1, 2], [3]],
                             "bools": [True, False]}


def test_tiny_model_counts_parameters(tmp_path: Path) -> None:
    info = read_gguf(write(tmp_path, tiny_model(rows=4, cols=8)))
    assert info.parameter_count == 32
    assert info.parameter_size == "32"
    assert info.file_type_name == "F32"
    assert model_info(info)["general.parameter_count"] == 32


def test_missing_file_type_falls_back_to_dominant_tensor_type(tmp_path: Path) -> None:
    data = build_gguf([kv("general.architecture", "str", "llama")],
                      [tensor_info("a", (32, 2), 8, 0), tensor_info("b", (4,), 0, 128)], data=b"\0" * 200)
    assert read_gguf(write(tmp_path, data)).file_type_name == "Q8_0"


@pytest.mark.parametrize(("count", "expected"), [
    (134_515_008, "134.52M"), (268_098_176, "268.10M"), (3_212_749_824, "3.2B"), (7_000_000_000, "7B"),
    (1_000_000, "1M"), (12_345, "12K"), (999, "999"),
])
def test_human_number(count: int, expected: str) -> None:
    assert human_number(count) == expected


BROKEN: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "truncated"),
    "not gguf": (b"PK\x03\x04 this is a zip file, honest" * 4, "not a GGUF file"),
    "version 1": (b"GGUF" + struct.pack("<IQQ", 1, 0, 0), "unsupported GGUF version 1"),
    "big endian": (b"GGUF" + struct.pack(">IQQ", 3, 0, 0), "big-endian"),
    "absurd kv count": (build_gguf([], n_kv=2**60), "runs past the end"),
    "absurd tensor count": (build_gguf([], n_tensors=2**40), "runs past the end"),
    "absurd string length": (build_gguf([struct.pack("<Q", 2**62) + b"key"]), "string of 4611686018427387904"),
    "absurd array length": (build_gguf([gguf_string("a") + struct.pack("<IIQ", 9, 8, 2**61)]), "array of"),
    "absurd scalar array": (build_gguf([gguf_string("a") + struct.pack("<IIQ", 9, 12, 2**61)]), "array of"),
    "unknown value type": (build_gguf([gguf_string("a") + struct.pack("<I", 99)]), "unknown metadata value"),
    "too many dims": (build_gguf([], [gguf_string("t") + struct.pack("<I", 1000)]), "1000 dimensions"),
    "kv cut short": (build_gguf([kv("general.architecture", "str", "llama")])[:40], "truncated"),
    "bad alignment": (build_gguf([kv("general.alignment", "u32", 3)]), "power of two"),
    "tensor past end": (build_gguf([], [tensor_info("w", (1024,), 0, 0)], data=b"\0" * 16), "tensor 'w' ends"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_files_raise_bad_gguf_quickly(tmp_path: Path, case: str) -> None:
    data, problem = BROKEN[case]
    path = write(tmp_path, data)
    started = time.monotonic()
    with pytest.raises(BadGGUF) as exc_info:
        read_gguf(path)
    assert time.monotonic() - started < 1.0
    assert isinstance(exc_info.value, BadRequest) and exc_info.value.status == 400
    assert str(path) in exc_info.value.message
    assert problem in exc_info.value.message


def test_real_file_cut_inside_header_and_inside_data(tmp_path: Path) -> None:
    source = smollm2_gguf_path().read_bytes()
    for cut in (100, 1_000_000, 5_000_000):
        with pytest.raises(BadGGUF, match="truncated"):
            read_gguf(write(tmp_path, source[:cut], f"cut{cut}.gguf"))


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(BadGGUF, match="cannot read"):
        read_gguf(tmp_path / "nope.gguf")
    with pytest.raises(BadGGUF, match="cannot read"):
        read_gguf(tmp_path)
