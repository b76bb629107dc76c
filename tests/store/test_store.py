"""The store against a models directory written by the test in Ollama's documented format."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ember.errors import BadRequest, BlobNotFound, CorruptManifest, InvalidModelName, ModelNotFound
from ember.store import ModelStore

MODEL_MT = "application/vnd.ollama.image.model"


def put_blob(root: Path, data: bytes) -> dict[str, Any]:
    """Write a blob the way Ollama lays it out; returns its manifest descriptor (without mediaType)."""
    hex_digest = hashlib.sha256(data).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / f"sha256-{hex_digest}").write_bytes(data)
    return {"digest": f"sha256:{hex_digest}", "size": len(data)}


def put_manifest(root: Path, parts: tuple[str, str, str, str], layers: list[tuple[str, bytes]],
                 config: dict[str, Any] | None = None, mtime: float | None = None) -> bytes:
    cfg = put_blob(root, json.dumps(config or {"model_format": "gguf", "model_family": "llama",
                                               "model_families": ["llama"], "model_type": "3.2B",
                                               "file_type": "Q4_K_M"}).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", **cfg},
        "layers": [{"mediaType": media_type, **put_blob(root, data)} for media_type, data in layers],
    }
    raw = json.dumps(manifest, indent=2).encode()  # Ollama's own format is compact; both must work
    path = root.joinpath("manifests", *parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return raw


LLAMA_PARTS = ("registry.ollama.ai", "library", "llama3.2", "latest")
USER_PARTS = ("registry.ollama.ai", "someone", "tiny", "v1")
HF_PARTS = ("hf.co", "bartowski", "Qwen-GGUF", "Q4_K_M")


@pytest.fixture
def populated(tmp_path: Path) -> tuple[ModelStore, bytes]:
    now = time.time()
    raw = put_manifest(tmp_path, LLAMA_PARTS, [
        (MODEL_MT, b"llama weights"),
        ("application/vnd.ollama.image.template", b"{{ .Prompt }}"),
        ("application/vnd.ollama.image.system", b"You are Mario."),
        ("application/vnd.ollama.image.params", b'{"stop":["<|eot_id|>"],"temperature":0.6}'),
        ("application/vnd.ollama.image.messages", b'[{"role":"user","content":"hi"}]'),
        ("application/vnd.ollama.image.license", b"LICENSE A"),
        ("application/vnd.ollama.image.license", b"LICENSE B"),
        ("application/vnd.ollama.image.adapter", b"lora"),
        ("application/vnd.ollama.image.projector", b"mmproj"),
    ], mtime=now - 100)
    put_manifest(tmp_path, USER_PARTS, [(MODEL_MT, b"tiny weights")], mtime=now - 10)
    put_manifest(tmp_path, HF_PARTS, [(MODEL_MT, b"qwen weights")], mtime=now - 1000)
    store = ModelStore(tmp_path)
    store.init()
    return store, raw


def test_resolves_all_spellings_case_insensitively(populated: tuple[ModelStore, bytes]) -> None:
    store, raw = populated
    for spelling in ("llama3.2", "llama3.2:latest", "library/llama3.2", "LLAMA3.2:Latest",
                     "registry.ollama.ai/library/llama3.2:latest", "Registry.Ollama.AI/Library/Llama3.2"):
        assert store.resolve(spelling).name.display == "llama3.2:latest"
    assert store.resolve("SomeOne/Tiny:V1").name.display == "someone/tiny:v1"
    assert store.resolve("hf.co/bartowski/qwen-gguf:q4_k_m").name.display == "hf.co/bartowski/Qwen-GGUF:Q4_K_M"
    assert store.exists("LLAMA3.2") and not store.exists("llama3.2:1b")


def test_model_fields_follow_the_manifest(populated: tuple[ModelStore, bytes]) -> None:
    store, raw = populated
    model = store.resolve("llama3.2")
    manifest = json.loads(raw)
    assert model.digest == hashlib.sha256(raw).hexdigest()
    assert model.size == manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    assert model.modified_at.tzinfo is not None
    assert abs(model.modified_at.timestamp() - (time.time() - 100)) < 5
    assert model.model_path.read_bytes() == b"llama weights"
    assert [p.read_bytes() for p in model.adapter_paths] == [b"lora"]
    assert [p.read_bytes() for p in model.projector_paths] == [b"mmproj"]
    assert model.template == "{{ .Prompt }}"
    assert model.system == "You are Mario."
    assert model.params == {"stop": ["<|eot_id|>"], "temperature": 0.6}
    assert model.messages == [{"role": "user", "content": "hi"}]
    assert model.licenses == ["LICENSE A", "LICENSE B"]
    assert model.details() == {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                               "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}
    tiny = store.resolve("someone/tiny:v1")
    assert tiny.template is None and tiny.system is None and tiny.params == {} and tiny.licenses == []


def test_list_is_newest_first(populated: tuple[ModelStore, bytes]) -> None:
    store, _ = populated
    assert [m.name.display for m in store.list()] == [
        "someone/tiny:v1", "llama3.2:latest", "hf.co/bartowski/Qwen-GGUF:Q4_K_M"]


def test_missing_and_invalid_names(populated: tuple[ModelStore, bytes]) -> None:
    store, _ = populated
    with pytest.raises(ModelNotFound) as exc_info:
        store.resolve("nope")
    assert exc_info.value.status == 404 and exc_info.value.message == "model 'nope:latest' not found"
    with pytest.raises(InvalidModelName):
        store.resolve("../../etc/passwd")


def test_corrupt_manifests_are_reported_not_fatal(populated: tuple[ModelStore, bytes]) -> None:
    store, _ = populated
    broken = store.manifests_dir / "registry.ollama.ai" / "library" / "broken" / "latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    (store.manifests_dir / "registry.ollama.ai" / "library" / ".DS_Store").write_text("junk")
    unreferenced = put_blob(store.root, b"orphan")["digest"]
    os.utime(store.blob_path(unreferenced), (0, 0))
    store.init()  # does not raise, and does not prune while a manifest is unreadable
    assert any("broken" in p for p in store.problems)
    assert store.has_blob(unreferenced)
    assert len(store.list()) == 3
    with pytest.raises(CorruptManifest):
        store.resolve("broken")
    assert store.prune() == []


def test_init_removes_interrupted_writes_but_keeps_partial_downloads(tmp_path: Path) -> None:
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    stale = [blobs / ".tmp-999999999-abc", blobs / ".tmp-anything", blobs / f".tmp-{os.getpid()}-x"]
    live = blobs / f".tmp-{os.getppid()}-live"  # another process that is still running
    partial = blobs / ("sha256-" + "a" * 64 + "-partial")
    partial_state = blobs / ("sha256-" + "a" * 64 + "-partial-0")
    for path in [*stale, live, partial, partial_state]:
        path.write_bytes(b"x")
    store = ModelStore(tmp_path)
    store.init()
    assert not any(p.exists() for p in stale)
    assert live.exists() and partial.exists() and partial_state.exists()
    assert (tmp_path / "manifests").is_dir()
    assert store.list() == []


def test_write_blob_hashes_and_verifies(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.init()
    digest = store.write_blob([b"hello ", b"world"])
    assert digest == "sha256:" + hashlib.sha256(b"hello world").hexdigest()
    assert store.blob_path(digest).read_bytes() == b"hello world"
    assert store.write_blob([b"hello world"], digest.replace(":", "-")) == digest
    assert store.has_blob(digest)


def test_digest_mismatch_leaves_nothing(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.init()
    wrong = "sha256:" + "0" * 64
    with pytest.raises(BadRequest) as exc_info:
        store.write_blob([b"data"], wrong)
    got = "sha256:" + hashlib.sha256(b"data").hexdigest()
    assert exc_info.value.message == f'digest mismatch, expected "{wrong}", got "{got}"'
    assert list(store.blobs_dir.iterdir()) == []


def test_async_write_and_mismatch(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.init()
    payload = os.urandom(3 * 1024 * 1024 + 17)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 65536):
            yield payload[start:start + 65536]

    expected = "sha256:" + hashlib.sha256(payload).hexdigest()
    assert asyncio.run(store.write_blob_async(chunks(), expected)) == expected
    assert store.blob_path(expected).read_bytes() == payload
    store.blob_path(expected).unlink()
    with pytest.raises(BadRequest, match="digest mismatch"):
        asyncio.run(store.write_blob_async(chunks(), "sha256:" + "1" * 64))
    assert list(store.blobs_dir.iterdir()) == []


def test_interrupted_async_write_removes_its_temp_file(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.init()

    async def failing() -> AsyncIterator[bytes]:
        yield b"x" * 2_000_000
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        asyncio.run(store.write_blob_async(failing()))
    assert list(store.blobs_dir.iterdir()) == []


@pytest.mark.parametrize("bad", ["sha256:abc", "sha256:" + "A" * 64, "md5:" + "0" * 64, "sha256/" + "0" * 64,
                                 "sha256:" + "0" * 64 + "/../x", ""])
def test_invalid_digest_format(tmp_path: Path, bad: str) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(BadRequest, match="invalid digest format"):
        store.blob_path(bad)
    with pytest.raises(BadRequest, match="invalid digest format"):
        store.write_blob([b"x"], bad)


def test_import_file_hard_links_and_reuses(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    store.init()
    source = tmp_path / "model.gguf"
    source.write_bytes(b"gguf bytes" * 1000)
    digest = store.import_file(source)
    assert digest == "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
    assert os.stat(store.blob_path(digest)).st_ino == os.stat(source).st_ino
    copy = tmp_path / "same-content.gguf"
    copy.write_bytes(source.read_bytes())
    assert store.import_file(copy) == digest
    assert os.stat(store.blob_path(digest)).st_ino == os.stat(source).st_ino  # existing blob kept
    assert [p.name for p in store.blobs_dir.iterdir()] == [f"sha256-{digest[7:]}"]


def test_import_file_copies_when_linking_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ModelStore(tmp_path / "models")
    store.init()
    source = tmp_path / "model.gguf"
    source.write_bytes(b"other bytes")

    def no_links(src: object, dst: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    digest = store.import_file(source)
    assert store.blob_path(digest).read_bytes() == b"other bytes"
    assert os.stat(store.blob_path(digest)).st_ino != os.stat(source).st_ino
    assert [p.name for p in store.blobs_dir.iterdir()] == [f"sha256-{digest[7:]}"]


def manifest_for(store: ModelStore, *layers: bytes) -> dict[str, Any]:
    config = store.write_blob([b"{}"])
    return {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": MODEL_MT, "digest": store.write_blob([data]), "size": len(data)}
                       for data in layers]}


def test_write_manifest_requires_its_blobs(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.init()
    manifest = manifest_for(store, b"w")
    manifest["layers"].append({"mediaType": MODEL_MT, "digest": "sha256:" + "2" * 64, "size": 1})
    with pytest.raises(BlobNotFound, match="not found"):
        store.write_manifest("x", manifest)
    assert not store.exists("x")
    assert list(store.manifests_dir.iterdir()) == []


def test_write_manifest_is_atomic_and_replaces_case_variants(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.init()
    first = store.write_manifest("Mixed:Tag", manifest_for(store, b"one"))
    second = store.write_manifest("mixed:tag", manifest_for(store, b"two"))
    assert first != second
    models = store.list()
    assert [m.name.display for m in models] == ["Mixed:Tag"]
    assert models[0].model_path.read_bytes() == b"two"
    assert models[0].digest == second
    assert not any(p.name.startswith(".tmp-") for p in store.blobs_dir.iterdir())


def test_manifest_bytes_are_written_verbatim(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.init()
    raw = json.dumps(manifest_for(store, b"w"), indent=3).encode()
    digest = store.write_manifest("registry.example.com:5000/ns/pulled:1", raw)
    assert digest == hashlib.sha256(raw).hexdigest()
    assert store.manifest_bytes("registry.example.com:5000/ns/pulled:1") == raw


def test_copy_keeps_the_digest(populated: tuple[ModelStore, bytes]) -> None:
    store, raw = populated
    store.copy("llama3.2", "backup/llama:kept")
    copied = store.resolve("backup/llama:kept")
    assert copied.digest == store.resolve("llama3.2").digest
    with pytest.raises(ModelNotFound) as exc_info:
        store.copy("missing", "x")
    assert exc_info.value.message == 'model "missing" not found'
    with pytest.raises(InvalidModelName):
        store.copy("llama3.2", "bad name")


def test_delete_prunes_only_unreferenced_blobs(tmp_path: Path) -> None:
    shared, unique = b"shared weights", b"unique template"
    put_manifest(tmp_path, ("registry.ollama.ai", "library", "a", "latest"),
                 [(MODEL_MT, shared), ("application/vnd.ollama.image.template", unique)])
    put_manifest(tmp_path, ("registry.ollama.ai", "library", "b", "latest"), [(MODEL_MT, shared)])
    unrelated = put_blob(tmp_path, b"uploaded for a create still to come")["digest"]
    store = ModelStore(tmp_path)
    store.init()
    model = store.resolve("a")
    store.delete("A")
    assert not store.exists("a")
    assert model.model_path.exists()  # still used by b
    assert not store.blob_path(put_digest(unique)).exists()
    assert store.has_blob(unrelated)  # delete only considers the deleted model's own blobs
    assert not (store.manifests_dir / "registry.ollama.ai" / "library" / "a").exists()
    store.delete("b")
    assert not model.model_path.exists()
    assert not (store.manifests_dir / "registry.ollama.ai").exists()
    assert store.manifests_dir.is_dir()
    with pytest.raises(ModelNotFound):
        store.delete("b")


def put_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_noprune_keeps_blobs(tmp_path: Path) -> None:
    put_manifest(tmp_path, ("registry.ollama.ai", "library", "a", "latest"), [(MODEL_MT, b"w")])
    store = ModelStore(tmp_path, noprune=True)
    store.init()
    path = store.resolve("a").model_path
    store.delete("a")
    assert path.exists()


def test_prune_respects_grace_and_ignores_partials(tmp_path: Path) -> None:
    put_manifest(tmp_path, ("registry.ollama.ai", "library", "a", "latest"), [(MODEL_MT, b"w")])
    store = ModelStore(tmp_path, noprune=True)
    store.init()
    fresh = store.write_blob([b"fresh upload"])
    partial = store.partial_path("sha256:" + "b" * 64)
    partial.write_bytes(b"half")
    assert store.prune(grace_seconds=3600) == []
    assert store.prune() == [fresh]
    assert partial.exists()
    assert store.resolve("a").model_path.exists()


def test_startup_prune_removes_old_orphans(tmp_path: Path) -> None:
    put_manifest(tmp_path, ("registry.ollama.ai", "library", "a", "latest"), [(MODEL_MT, b"w")])
    old, new = put_blob(tmp_path, b"old orphan")["digest"], put_blob(tmp_path, b"new orphan")["digest"]
    store = ModelStore(tmp_path)
    os.utime(store.blob_path(old), (time.time() - 7200, time.time() - 7200))
    store.init()
    assert not store.has_blob(old)
    assert store.has_blob(new)
    assert store.resolve("a").model_path.exists()
