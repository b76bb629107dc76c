"""Assembling a model from parts: blobs become layers, a config blob is derived from the GGUF, the
manifest is written last. Used by bundled registration and by /api/create.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ember.names import ModelName
from ember.store import manifest as mf
from ember.store.digests import normalize_digest, sha256_bytes
from ember.store.gguf import GGUFInfo, read_gguf
from ember.store.store import ModelStore

Progress = dict[str, Any]


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str  # sha256:<hex>
    size: int
    parent: str = ""  # the model this layer came from (manifest field "from")

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.parent:
            entry["from"] = self.parent
        return entry


def blob_layer(store: ModelStore, media_type: str, digest: str, parent: str = "") -> Layer:
    """A layer for a blob already in the store."""
    digest = normalize_digest(digest)
    return Layer(media_type, digest, store.blob_path(digest).stat().st_size, parent)


def data_layer(store: ModelStore, media_type: str, data: bytes) -> tuple[Layer, bool]:
    """Store ``data`` as a blob (if new) and return its layer and whether the blob was created."""
    digest = sha256_bytes(data)
    created = not store.has_blob(digest)
    if created:
        store.write_blob([data], digest)
    return Layer(media_type, digest, len(data)), created


def config_for(info: GGUFInfo, layers: Sequence[Layer], projectors: Sequence[GGUFInfo] = ()) -> dict[str, Any]:
    """Ollama's ConfigV2, filled from the GGUF metadata; drives ``details`` in /api/tags."""
    families = [info.architecture]
    families += [p.architecture for p in projectors if p.architecture and p.architecture not in families]
    config: dict[str, Any] = {
        "model_format": "gguf",
        "model_family": info.architecture,
        "model_families": families,
        "model_type": info.parameter_size,
        "file_type": info.file_type_name,
        "architecture": _go_arch(),
        "os": sys.platform if sys.platform != "win32" else "windows",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
    }
    if info.context_length:
        config["context_length"] = info.context_length
    if info.embedding_length:
        config["embedding_length"] = info.embedding_length
    return config


def _go_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@dataclass
class ModelParts:
    """Everything a model is made of; blobs by digest, text parts by value. None means "no such layer"."""

    model_digest: str
    template: str | None = None
    system: str | None = None
    params: dict[str, Any] | None = None
    messages: list[dict[str, str]] | None = None
    licenses: Sequence[str] = ()
    adapters: Sequence[str] = ()
    projectors: Sequence[str] = ()
    parent: str = ""


def build_model_steps(store: ModelStore, name: str | ModelName, parts: ModelParts, *,
                      gguf: GGUFInfo | None = None, new_digests: frozenset[str] = frozenset()
                      ) -> Iterator[Progress]:
    """Write the layers, config and manifest of a model, yielding Ollama-style progress as it goes.

    ``new_digests`` names blobs the caller has just added, reported as "creating new layer".
    """
    blobs = [blob_layer(store, mf.MODEL, parts.model_digest, parts.parent)]
    blobs += [blob_layer(store, mf.ADAPTER, d) for d in parts.adapters]
    blobs += [blob_layer(store, mf.PROJECTOR, d) for d in parts.projectors]
    layers: list[Layer] = []
    for layer in blobs:
        yield _layer_status(layer.digest, layer.digest in new_digests)
        layers.append(layer)
    for media_type, data in _text_parts(parts):
        layer, created = data_layer(store, media_type, data)
        yield _layer_status(layer.digest, created)
        layers.append(layer)
    info = gguf if gguf is not None else read_gguf(store.blob_path(parts.model_digest))
    projector_infos = [read_gguf(store.blob_path(d)) for d in parts.projectors]
    config_bytes = json.dumps(config_for(info, layers, projector_infos), separators=(",", ":")).encode()
    config, created = data_layer(store, mf.CONFIG_MEDIA_TYPE, config_bytes)
    yield _layer_status(config.digest, created)
    yield {"status": "writing manifest"}
    store.write_manifest(name, {
        "schemaVersion": 2,
        "mediaType": mf.MANIFEST_MEDIA_TYPE,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    })


def build_model(store: ModelStore, name: str | ModelName, model_digest: str, *, template: str | None = None,
                system: str | None = None, params: dict[str, Any] | None = None,
                messages: list[dict[str, str]] | None = None, licenses: Sequence[str] = (),
                adapters: Sequence[str] = (), projectors: Sequence[str] = (), parent: str = "") -> None:
    """Create (or replace) model ``name`` from a model blob already in the store plus optional parts."""
    parts = ModelParts(model_digest, template, system, params, messages, licenses, adapters, projectors, parent)
    for _ in build_model_steps(store, name, parts):
        pass


def _text_parts(parts: ModelParts) -> Iterator[tuple[str, bytes]]:
    if parts.template is not None:
        yield mf.TEMPLATE, parts.template.encode()
    if parts.system is not None:
        yield mf.SYSTEM, parts.system.encode()
    if parts.params:
        yield mf.PARAMS, json.dumps(parts.params, separators=(",", ":"), ensure_ascii=False).encode()
    if parts.messages:
        yield mf.MESSAGES, json.dumps(parts.messages, separators=(",", ":"), ensure_ascii=False).encode()
    for text in parts.licenses:
        yield mf.LICENSE, text.encode()


def _layer_status(digest: str, created: bool) -> Progress:
    return {"status": f"{'creating new' if created else 'using existing'} layer {digest}"}
