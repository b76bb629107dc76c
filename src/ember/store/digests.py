"""Blob digests: ``sha256:<hex>`` on the wire, ``sha256-<hex>`` as a file name (``:`` is not portable)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ember.errors import BadRequest

_DIGEST = re.compile(r"sha256[:-]([0-9a-f]{64})")
_BLOB_FILE = re.compile(r"sha256-([0-9a-f]{64})")
CHUNK = 1024 * 1024


def digest_hex(digest: str) -> str:
    """The 64 hex digits of ``sha256:<hex>`` or ``sha256-<hex>``; BadRequest for anything else."""
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise BadRequest("invalid digest format")
    return match.group(1)


def normalize_digest(digest: str) -> str:
    return f"sha256:{digest_hex(digest)}"


def is_digest(text: str) -> bool:
    return isinstance(text, str) and _DIGEST.fullmatch(text) is not None


def blob_file_name(digest: str) -> str:
    return f"sha256-{digest_hex(digest)}"


def digest_of_blob_file(name: str) -> str | None:
    """``sha256:<hex>`` for a complete blob's file name; None for partial downloads, temp files, strays."""
    match = _BLOB_FILE.fullmatch(name)
    return f"sha256:{match.group(1)}" if match else None


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()
