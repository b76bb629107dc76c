"""Manifests: Docker v2 schema 2 JSON whose layers carry Ollama media types (see docs/store.md)."""

from __future__ import annotations

import json
from typing import Any

from ember.errors import CorruptManifest
from ember.store.digests import is_digest, normalize_digest

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"

MODEL = "application/vnd.ollama.image.model"
ADAPTER = "application/vnd.ollama.image.adapter"
PROJECTOR = "application/vnd.ollama.image.projector"
TEMPLATE = "application/vnd.ollama.image.template"
LEGACY_PROMPT = "application/vnd.ollama.image.prompt"
SYSTEM = "application/vnd.ollama.image.system"
PARAMS = "application/vnd.ollama.image.params"
MESSAGES = "application/vnd.ollama.image.messages"
LICENSE = "application/vnd.ollama.image.license"


def parse_manifest(raw: bytes, where: str) -> dict[str, Any]:
    """Parse and shape-check manifest bytes; ``where`` names the file in error messages."""
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptManifest(f"corrupt manifest {where}: not JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("layers"), list):
        raise CorruptManifest(f"corrupt manifest {where}: no layers list")
    for entry in manifest["layers"]:
        _check_descriptor(entry, where)
    config = manifest.get("config")
    if config is not None:
        _check_descriptor(config, where)
    return manifest


def _check_descriptor(entry: Any, where: str) -> None:
    if not isinstance(entry, dict):
        raise CorruptManifest(f"corrupt manifest {where}: a layer is not an object")
    if not is_digest(entry.get("digest", "")):
        raise CorruptManifest(f"corrupt manifest {where}: bad layer digest {entry.get('digest')!r}")
    size = entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CorruptManifest(f"corrupt manifest {where}: bad layer size {size!r}")
    if not isinstance(entry.get("mediaType", ""), str):
        raise CorruptManifest(f"corrupt manifest {where}: bad media type")


def referenced_digests(manifest: dict[str, Any]) -> set[str]:
    """Every blob a (parsed) manifest needs: its config and all layers, as ``sha256:<hex>``."""
    entries = list(manifest["layers"])
    if manifest.get("config") is not None:
        entries.append(manifest["config"])
    return {normalize_digest(entry["digest"]) for entry in entries}


def layers_of(manifest: dict[str, Any], *media_types: str) -> list[dict[str, Any]]:
    return [layer for layer in manifest["layers"] if layer.get("mediaType") in media_types]


def total_size(manifest: dict[str, Any]) -> int:
    config = manifest.get("config") or {"size": 0}
    return int(config["size"]) + sum(int(layer["size"]) for layer in manifest["layers"])


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    """Compact JSON, as Ollama writes it (the manifest digest is the hash of exactly these bytes)."""
    return json.dumps(manifest, separators=(",", ":"), ensure_ascii=False).encode()
