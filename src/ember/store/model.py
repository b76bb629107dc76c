"""LocalModel: one manifest of the store, with its small layers (template, system, params...) read in."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ember.errors import CorruptManifest
from ember.names import ModelName
from ember.store import manifest as mf

log = logging.getLogger(__name__)

BlobPath = Callable[[str], Path]


@dataclass(frozen=True, eq=False)
class LocalModel:
    name: ModelName
    digest: str  # sha256 hex of the manifest file bytes, no prefix (Ollama's model "ID")
    size: int
    modified_at: datetime
    manifest: dict[str, Any]
    manifest_path: Path
    model_path: Path
    adapter_paths: list[Path]
    projector_paths: list[Path]
    template: str | None
    system: str | None
    params: dict[str, Any]
    messages: list[dict[str, str]]
    licenses: list[str]
    config: dict[str, Any]

    @property
    def parent_model(self) -> str:
        model_layer = mf.layers_of(self.manifest, mf.MODEL)[0]
        parent = model_layer.get("from", "")
        return parent if isinstance(parent, str) else ""

    def details(self) -> dict[str, Any]:
        """Ollama's ``details`` object; families stays null for models created without it, like Ollama."""
        families = self.config.get("model_families")
        return {
            "parent_model": self.parent_model,
            "format": _text(self.config.get("model_format")) or "gguf",
            "family": _text(self.config.get("model_family")),
            "families": [str(f) for f in families] if isinstance(families, list) else None,
            "parameter_size": _text(self.config.get("model_type")),
            "quantization_level": _text(self.config.get("file_type")),
        }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def load_model(name: ModelName, manifest_path: Path, blob_path: BlobPath) -> LocalModel:
    """Build a LocalModel from a manifest file; CorruptManifest if it is unusable.

    Missing or unreadable small layers are logged and treated as absent, so one damaged blob does not
    hide the model from /api/tags; the loader reports a missing model blob when it is actually used.
    """
    try:
        raw = manifest_path.read_bytes()
        mtime = manifest_path.stat().st_mtime
    except OSError as exc:
        raise CorruptManifest(f"cannot read manifest {manifest_path}: {exc.strerror or exc}") from None
    manifest = mf.parse_manifest(raw, str(manifest_path))
    model_layers = mf.layers_of(manifest, mf.MODEL)
    if not model_layers:
        raise CorruptManifest(f"manifest {manifest_path} has no model layer")
    reader = _LayerReader(manifest, blob_path, name)
    return LocalModel(
        name=name,
        digest=hashlib.sha256(raw).hexdigest(),
        size=mf.total_size(manifest),
        modified_at=datetime.fromtimestamp(mtime, tz=UTC).astimezone(),
        manifest=manifest,
        manifest_path=manifest_path,
        model_path=blob_path(model_layers[0]["digest"]),
        adapter_paths=reader.paths(mf.ADAPTER),
        projector_paths=reader.paths(mf.PROJECTOR),
        template=reader.text(mf.TEMPLATE, mf.LEGACY_PROMPT),
        system=reader.text(mf.SYSTEM),
        params=reader.json_object(mf.PARAMS),
        messages=reader.messages(),
        licenses=reader.texts(mf.LICENSE),
        config=reader.config(),
    )


class _LayerReader:
    def __init__(self, manifest: dict[str, Any], blob_path: BlobPath, name: ModelName) -> None:
        self.manifest = manifest
        self.blob_path = blob_path
        self.name = name

    def paths(self, media_type: str) -> list[Path]:
        return [self.blob_path(layer["digest"]) for layer in mf.layers_of(self.manifest, media_type)]

    def _read(self, digest: str) -> bytes | None:
        try:
            return self.blob_path(digest).read_bytes()
        except OSError as exc:
            log.warning("model %s: cannot read layer %s: %s", self.name.display, digest, exc)
            return None

    def texts(self, *media_types: str) -> list[str]:
        found = []
        for layer in mf.layers_of(self.manifest, *media_types):
            data = self._read(layer["digest"])
            if data is not None:
                found.append(data.decode("utf-8", errors="replace"))
        return found

    def text(self, *media_types: str) -> str | None:
        texts = self.texts(*media_types)
        return texts[-1] if texts else None  # a later layer overrides an earlier one, as in Ollama

    def _json(self, media_type: str) -> Any:
        for text in reversed(self.texts(media_type)):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                log.warning("model %s: layer %s is not JSON", self.name.display, media_type)
        return None

    def json_object(self, media_type: str) -> dict[str, Any]:
        value = self._json(media_type)
        return value if isinstance(value, dict) else {}

    def messages(self) -> list[dict[str, str]]:
        value = self._json(mf.MESSAGES)
        if not isinstance(value, list):
            return []
        return [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
                for m in value if isinstance(m, dict)]

    def config(self) -> dict[str, Any]:
        descriptor = self.manifest.get("config")
        if descriptor is None:
            return {}
        data = self._read(descriptor["digest"])
        try:
            value = json.loads(data) if data is not None else {}
        except json.JSONDecodeError:
            log.warning("model %s: config blob is not JSON", self.name.display)
            return {}
        return value if isinstance(value, dict) else {}
