from __future__ import annotations

import os
from pathlib import Path

from ember.store import ModelStore, read_gguf
from ember.store.bundled import bundled_gguf_path, needed_stops, register_bundled
from tests.conftest_models import gemma_gguf_path, smollm2_gguf_path


def test_registers_the_wheel_gguf_as_a_hard_link(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.init()
    assert bundled_gguf_path() == smollm2_gguf_path()
    assert register_bundled(store) is True
    model = store.resolve("smollm2:135m")
    assert os.stat(model.model_path).st_ino == os.stat(smollm2_gguf_path()).st_ino
    assert model.details() == {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                               "parameter_size": "134.52M", "quantization_level": "Q4_1"}
    assert model.config["context_length"] == 8192
    assert model.template is None  # the GGUF's own Jinja chat template is used
    assert model.params == {}  # <|im_end|> is the EOS token already: no stop parameter needed
    assert model.licenses == ["apache-2.0"]


def test_is_idempotent_and_respects_an_existing_name(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.init()
    assert register_bundled(store, "mine:1") is True
    digest = store.resolve("mine:1").digest
    assert register_bundled(store, "MINE:1") is False
    assert store.resolve("mine:1").digest == digest
    assert [m.name.display for m in store.list()] == ["mine:1"]


def test_registered_model_survives_a_restart(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.init()
    register_bundled(store)
    before = sorted(p.name for p in (tmp_path / "blobs").iterdir())
    restarted = ModelStore(tmp_path)
    restarted.init()  # the startup prune must keep every blob the manifest uses
    assert sorted(p.name for p in (tmp_path / "blobs").iterdir()) == before
    assert restarted.resolve("smollm2:135m").model_path.is_file()


def test_needed_stops() -> None:
    assert needed_stops(read_gguf(smollm2_gguf_path())) == []
    assert needed_stops(read_gguf(gemma_gguf_path())) == []  # no chat template at all
