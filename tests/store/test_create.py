from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from ember.errors import BadGGUF, BadRequest, BlobNotFound, EmberError, InvalidModelName, ModelNotFound
from ember.store import ModelStore, read_gguf
from ember.store.create import create_model, parse_parameters
from ember.store.digests import sha256_file
from tests.conftest_models import smollm2_gguf_path
from tests.store.gguf_builder import tiny_llama, tiny_model


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    created = ModelStore(tmp_path / "models")
    created.init()
    return created


def run(store: ModelStore, body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(create_model(store, body))


def statuses(progress: list[dict[str, Any]]) -> list[str]:
    return [p["status"] for p in progress]


def store_files(store: ModelStore) -> list[str]:
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())


def test_create_from_a_gguf_path(store: ModelStore) -> None:
    progress = run(store, {"model": "smol:test", "from": str(smollm2_gguf_path())})
    steps = statuses(progress)
    assert steps[0] == "parsing GGUF"
    assert steps[1].startswith("creating new layer sha256:")
    assert steps[-2:] == ["writing manifest", "success"]
    model = store.resolve("smol:test")
    assert os.stat(model.model_path).st_ino == os.stat(smollm2_gguf_path()).st_ino
    assert model.details()["quantization_level"] == "Q4_1"
    assert model.details()["parameter_size"] == "134.52M"
    assert model.details()["family"] == "llama"
    # the same file again: every layer already exists
    again = statuses(run(store, {"model": "smol:again", "from": str(smollm2_gguf_path())}))
    assert not any(s.startswith("creating new layer") for s in again)


def test_create_from_an_existing_model_inherits_and_overrides(store: ModelStore) -> None:
    run(store, {"model": "base", "from": str(smollm2_gguf_path()), "system": "old system",
                "parameters": {"temperature": 0.5, "top_k": 20}, "license": "MIT"})
    progress = run(store, {"model": "derived:1", "from": "BASE", "system": "You are Mario.",
                           "parameters": {"temperature": "0.9", "stop": ["<|im_end|>"]}})
    assert "parsing GGUF" not in statuses(progress)
    base, derived = store.resolve("base"), store.resolve("derived:1")
    assert derived.model_path == base.model_path
    assert derived.system == "You are Mario."
    assert derived.params == {"temperature": 0.9, "top_k": 20, "stop": ["<|im_end|>"]}
    assert derived.licenses == ["MIT"]
    assert derived.details()["parent_model"] == "base:latest"
    assert base.system == "old system" and base.params == {"temperature": 0.5, "top_k": 20}


def test_create_from_uploaded_blob_and_digest(store: ModelStore) -> None:
    digest = store.import_file(smollm2_gguf_path())
    run(store, {"model": "from-files", "files": {"model.gguf": digest},
                "template": "{{ .Prompt }}", "messages": [{"role": "user", "content": "hi"}]})
    model = store.resolve("from-files")
    assert model.template == "{{ .Prompt }}"
    assert model.messages == [{"role": "user", "content": "hi"}]
    run(store, {"name": "from-digest", "from": digest.replace(":", "-"), "stream": False})
    assert store.resolve("from-digest").model_path == model.model_path


def test_legacy_modelfile_field(store: ModelStore, tmp_path: Path) -> None:
    pytest.importorskip("ember.modelfile")
    text = f"FROM {smollm2_gguf_path()}\nSYSTEM Be brief.\nPARAMETER temperature 0.3\nPARAMETER stop <|im_end|>\n"
    assert statuses(run(store, {"model": "legacy", "modelfile": text}))[-1] == "success"
    model = store.resolve("legacy")
    assert model.system == "Be brief."
    assert model.params == {"temperature": 0.3, "stop": ["<|im_end|>"]}


def first_error(store: ModelStore, body: dict[str, Any]) -> EmberError:
    """Errors must come from the first step, before any progress is produced."""
    generator = create_model(store, body)
    with pytest.raises(EmberError) as exc_info:
        next(generator)
    return exc_info.value


def test_broken_gguf_is_a_400_and_writes_nothing(store: ModelStore, tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(smollm2_gguf_path().read_bytes()[:500_000])
    before = store_files(store)
    error = first_error(store, {"model": "broken", "from": str(broken)})
    assert isinstance(error, BadGGUF) and error.status == 400 and str(broken) in error.message
    assert store_files(store) == before
    digest = store.write_blob([b"GGUF but not really"])
    assert isinstance(first_error(store, {"model": "broken", "files": {"x.gguf": digest}}), BadGGUF)
    assert not store.exists("broken")


@pytest.mark.parametrize(("body", "error_type", "message"), [
    ({"model": "x"}, BadRequest, "neither 'from' or 'files' was specified"),
    ({"from": "smollm2"}, InvalidModelName, "invalid model name"),
    ({"model": "bad name", "from": "x"}, InvalidModelName, "invalid model name"),
    ({"model": "x", "from": "no-such-model"}, ModelNotFound, "model 'no-such-model:latest' not found"),
    ({"model": "x", "from": "/no/such/file.gguf"}, BadRequest, "file /no/such/file.gguf does not exist"),
    ({"model": "x", "from": "sha256:" + "0" * 64}, BlobNotFound, "not found"),
    ({"model": "x", "files": {"/etc/passwd": "sha256:" + "0" * 64}}, BadRequest, "file path must be relative"),
    ({"model": "x", "files": {"../x.gguf": "sha256:" + "0" * 64}}, BadRequest, "file path must be relative"),
    ({"model": "x", "files": {"C:\\x.gguf": "sha256:" + "0" * 64}}, BadRequest, "file path must be relative"),
    ({"model": "x", "files": {"x.gguf": "sha256:zz"}}, BadRequest, "invalid digest format"),
    ({"model": "x", "files": {"x.gguf": "sha256:" + "0" * 64}}, BlobNotFound, "not found"),
])
def test_invalid_requests(store: ModelStore, body: dict[str, Any], error_type: type[EmberError],
                          message: str) -> None:
    error = first_error(store, body)
    assert isinstance(error, error_type)
    assert message in error.message


@pytest.mark.parametrize(("parameters", "message"), [
    ({"temprature": 0.5, "bogus": 1}, "unknown parameter 'bogus', 'temprature'"),
    ({"temperature": "hot"}, 'option "temperature" must be of type float'),
    ({"num_ctx": [1]}, 'option "num_ctx" must be of type integer'),
    ({"stop": 5}, 'option "stop" must be of type array of strings'),
])
def test_bad_parameters(store: ModelStore, parameters: dict[str, Any], message: str) -> None:
    error = first_error(store, {"model": "x", "from": str(smollm2_gguf_path()), "parameters": parameters})
    assert isinstance(error, BadRequest) and message in error.message
    assert not store.exists("x")


def test_parameters_are_typed() -> None:
    assert parse_parameters({"temperature": "0.7", "num_ctx": "4096", "use_mmap": "false", "stop": "</s>",
                             "seed": 3.0, "mirostat": 2, "top_p": None}) == {
        "temperature": 0.7, "num_ctx": 4096, "use_mmap": False, "stop": ["</s>"], "seed": 3}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("messages", [{"role": "wizard", "content": "x"}], "invalid message role"),
    ("messages", "hi", "'messages' must be an array"),
    ("license", 5, "'license' must be a string or an array of strings"),
    ("template", 5, "'template' must be a string"),
    ("quantize", "q3_banana", "unsupported quantization type"),
])
def test_bad_fields(store: ModelStore, field: str, value: Any, message: str) -> None:
    error = first_error(store, {"model": "x", "from": str(smollm2_gguf_path()), field: value})
    assert message in error.message and error.status == 400


def test_quantizing_a_quantized_model_is_a_clear_400(store: ModelStore) -> None:
    error = first_error(store, {"model": "x", "from": str(smollm2_gguf_path()), "quantize": "q8_0"})
    assert error.status == 400
    assert error.message == ("quantization is only supported for F16, BF16 and F32 models; this model is Q4_1")
    assert store_files(store) == []


def test_failed_quantization_leaves_no_files(store: ModelStore, tmp_path: Path) -> None:
    source = tmp_path / "tiny-f32.gguf"
    source.write_bytes(tiny_model())  # F32, valid GGUF, but not a model llama.cpp can load
    generator = create_model(store, {"model": "q", "from": str(source), "quantize": "Q8_0"})
    assert next(generator) == {"status": "parsing GGUF"}
    assert next(generator) == {"status": "quantizing F32 model to Q8_0"}
    with pytest.raises(EmberError, match="quantizing to Q8_0 failed"):
        next(generator)
    assert store_files(store) == []
    assert not store.exists("q")


def test_quantize_an_f32_model_keeps_only_the_result(store: ModelStore, tmp_path: Path) -> None:
    source = tmp_path / "tiny-llama-f32.gguf"
    source.write_bytes(tiny_llama())
    progress = statuses(run(store, {"model": "tiny:q8", "from": str(source), "quantize": "q8_0"}))
    assert progress[:2] == ["parsing GGUF", "quantizing F32 model to Q8_0"]
    assert progress[-1] == "success"
    model = store.resolve("tiny:q8")
    assert model.details()["quantization_level"] == "Q8_0"
    assert read_gguf(model.model_path).file_type_name == "Q8_0"
    assert not store.has_blob(sha256_file(source))  # the unquantized weights never entered the store
    assert not any(p.name.startswith(".tmp-") for p in store.blobs_dir.iterdir())
