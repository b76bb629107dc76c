"""ModelStore: Ollama's on-disk layout (``blobs/`` + ``manifests/``) with crash-safe writes.

Invariants (docs/store.md has the long form):
- a blob file ``blobs/sha256-<hex>`` is complete and its content hashes to ``<hex>``;
- a manifest is written last, after every blob it names exists, and replaced atomically;
- temp files live in ``blobs/.tmp-*``; resumable downloads in ``blobs/sha256-<hex>-partial*`` are kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ember.errors import BadRequest, BlobNotFound, CorruptManifest, ModelNotFound
from ember.names import ModelName
from ember.store import manifest as mf
from ember.store.digests import CHUNK, blob_file_name, digest_of_blob_file, normalize_digest, sha256_file
from ember.store.files import (
    TEMP_PREFIX,
    HashingWriter,
    fsync_dir,
    pid_alive,
    remove_quietly,
    temp_owner,
    temp_path,
    write_atomic,
)
from ember.store.model import LocalModel, load_model

log = logging.getLogger(__name__)

STARTUP_PRUNE_GRACE_S = 3600.0  # a blob uploaded for a create that has not run yet survives a restart
ASYNC_WRITE_BATCH = 1024 * 1024
Digests = list[str]  # an alias: inside ModelStore the name `list` is the method


class ModelStore:
    def __init__(self, root: Path, *, noprune: bool = False) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs"
        self.manifests_dir = self.root / "manifests"
        self.noprune = noprune
        self.problems: list[str] = []  # corrupt manifests found by the last scan, for logs and `ember doctor`
        self._lock = threading.RLock()  # orders manifest writes against deletes and prunes
        self._writing: set[Path] = set()  # this process's temp files still being written

    # -- setup ------------------------------------------------------------------------------------------

    def init(self) -> None:
        """Create the directories, clear leftovers of interrupted writes, prune stale blobs."""
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.manifests_dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temps()
        self._scan()
        for problem in self.problems:
            log.warning("%s", problem)
        if not self.noprune:
            self.prune(grace_seconds=STARTUP_PRUNE_GRACE_S)

    def _remove_stale_temps(self) -> None:
        for entry in self.blobs_dir.glob(TEMP_PREFIX + "*"):
            owner = temp_owner(entry.name)
            ours = owner == os.getpid()
            live_elsewhere = owner is not None and not ours and pid_alive(owner)
            if live_elsewhere or (ours and entry in self._writing):
                continue
            log.info("removing leftover temp file %s", entry)
            remove_quietly(entry)

    # -- names and lookup -------------------------------------------------------------------------------

    def manifest_path(self, name: ModelName) -> Path:
        return self.manifests_dir.joinpath(*name.parts)

    def _find_manifest(self, name: ModelName) -> tuple[ModelName, Path] | None:
        """The manifest for ``name``, matching each part case-insensitively, with the on-disk spelling."""
        exact = self.manifest_path(name)
        if exact.is_file():
            return name, exact
        current = self.manifests_dir
        found: list[str] = []
        for part in name.parts:
            match = _child_ignoring_case(current, part)
            if match is None:
                return None
            found.append(match)
            current = current / match
        if not current.is_file():
            return None
        return ModelName(*found), current

    def _manifests(self) -> Iterator[tuple[ModelName, Path]]:
        """Every ``manifests/<host>/<ns>/<model>/<tag>`` file whose parts form a valid name."""
        for path in sorted(self.manifests_dir.glob("*/*/*/*")):
            if not path.is_file():
                continue
            name = ModelName(*path.relative_to(self.manifests_dir).parts)
            try:
                name.validate()
            except BadRequest:
                log.debug("ignoring %s: not a valid model name", path)
                continue
            yield name, path

    def _scan(self) -> tuple[list[LocalModel], list[str]]:
        models, problems = [], []
        for name, path in self._manifests():
            try:
                models.append(load_model(name, path, self.blob_path))
            except CorruptManifest as exc:
                problems.append(exc.message)
        self.problems = problems
        return models, problems

    def resolve(self, name: str | ModelName) -> LocalModel:
        """The local model called ``name`` (case-insensitive); ModelNotFound if there is none."""
        parsed = _parse(name)
        found = self._find_manifest(parsed)
        if found is None:
            raise ModelNotFound(parsed.display)
        return load_model(found[0], found[1], self.blob_path)

    def exists(self, name: str | ModelName) -> bool:
        return self._find_manifest(_parse(name)) is not None

    def list(self) -> list[LocalModel]:
        """All usable models, newest first; corrupt manifests are skipped and recorded in ``problems``."""
        models, _ = self._scan()
        return sorted(models, key=lambda m: m.modified_at, reverse=True)

    def manifest_bytes(self, name: str | ModelName) -> bytes:
        """The manifest file exactly as stored (what a push sends and the model digest hashes)."""
        parsed = _parse(name)
        found = self._find_manifest(parsed)
        if found is None:
            raise ModelNotFound(parsed.display)
        return found[1].read_bytes()

    # -- blobs ------------------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / blob_file_name(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def partial_path(self, digest: str) -> Path:
        """Where a resumable download of ``digest`` keeps its bytes (kept by init, ignored by prune)."""
        return self.blobs_dir / (blob_file_name(digest) + "-partial")

    def _new_writer(self) -> HashingWriter:
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        writer = HashingWriter(self.blobs_dir)
        self._writing.add(writer.path)
        return writer

    def _commit(self, writer: HashingWriter, expected: str | None) -> str:
        digest = writer.finish(expected)
        writer.rename_to(self.blob_path(digest))
        return digest

    def _release(self, writer: HashingWriter) -> None:
        writer.discard()
        self._writing.discard(writer.path)

    def write_blob(self, chunks: Iterable[bytes], expected_digest: str | None = None) -> str:
        """Store a blob from ``chunks``, verified against ``expected_digest``; returns ``sha256:<hex>``."""
        expected = normalize_digest(expected_digest) if expected_digest is not None else None
        writer = self._new_writer()
        try:
            for chunk in chunks:
                writer.write(chunk)
            return self._commit(writer, expected)
        finally:
            self._release(writer)

    async def write_blob_async(self, chunks: AsyncIterable[bytes], expected_digest: str | None = None) -> str:
        """``write_blob`` for an async source: the disk work runs in threads, in batches of ~1 MiB."""
        expected = normalize_digest(expected_digest) if expected_digest is not None else None
        writer = await asyncio.to_thread(self._new_writer)
        try:
            batch = bytearray()
            async for chunk in chunks:
                batch += chunk
                if len(batch) >= ASYNC_WRITE_BATCH:
                    await asyncio.to_thread(writer.write, bytes(batch))
                    batch.clear()
            if batch:
                await asyncio.to_thread(writer.write, bytes(batch))
            return await asyncio.to_thread(self._commit, writer, expected)
        finally:
            self._release(writer)

    def import_file(self, path: Path, *, digest: str | None = None) -> str:
        """Add a local file as a blob: reuse an existing blob, else hard-link, else copy; returns its digest.

        ``digest`` skips hashing when the caller has just hashed the file (a copy is still verified).
        """
        digest = normalize_digest(digest) if digest is not None else sha256_file(path)
        if self.has_blob(digest):
            return digest
        try:
            self._link_in(path, digest)
        except OSError as exc:
            log.debug("cannot hard-link %s (%s); copying", path, exc)
            self._copy_in(path, digest)
        return digest

    def _link_in(self, path: Path, digest: str) -> None:
        """Link to a temp name first, then rename: the blob name appears atomically, and never half-made."""
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        temp = temp_path(self.blobs_dir)
        self._writing.add(temp)
        try:
            os.link(path, temp)
            os.replace(temp, self.blob_path(digest))
            fsync_dir(self.blobs_dir)
        finally:
            remove_quietly(temp)  # only still there if the rename failed
            self._writing.discard(temp)

    def _copy_in(self, path: Path, digest: str) -> None:
        writer = self._new_writer()
        try:
            with open(path, "rb") as source:
                while chunk := source.read(CHUNK):
                    writer.write(chunk)
            # verifying against the first hash catches a file that changed while it was being imported
            self._commit(writer, digest)
        finally:
            self._release(writer)

    # -- manifests --------------------------------------------------------------------------------------

    def write_manifest(self, name: str | ModelName, manifest: dict[str, Any] | bytes) -> str:
        """Atomically (re)place the manifest for ``name``; every blob it names must already exist.

        Bytes are written verbatim (a pulled manifest keeps the registry's digest). An existing manifest
        whose name differs only in case is replaced in place. Returns the manifest digest (hex).
        """
        parsed = _parse(name)
        raw = manifest if isinstance(manifest, bytes) else mf.encode_manifest(manifest)
        parsed_manifest = mf.parse_manifest(raw, parsed.display)
        with self._lock:
            for digest in sorted(mf.referenced_digests(parsed_manifest)):
                if not self.has_blob(digest):
                    raise BlobNotFound(f'blob "{digest}" not found')
            found = self._find_manifest(parsed)
            target = found[1] if found else self.manifest_path(parsed)
            write_atomic(target, raw, self.blobs_dir)
        return hashlib.sha256(raw).hexdigest()

    def copy(self, source: str | ModelName, destination: str | ModelName) -> None:
        src, dst = _parse(source), _parse(destination)
        found = self._find_manifest(src)
        if found is None:
            raise ModelNotFound(src.display, f'model "{source}" not found')
        self.write_manifest(dst, found[1].read_bytes())

    def delete(self, name: str | ModelName) -> None:
        """Remove the manifest, empty directories, and (unless noprune) blobs no other manifest uses."""
        parsed = _parse(name)
        with self._lock:
            found = self._find_manifest(parsed)
            if found is None:
                raise ModelNotFound(parsed.display)
            path = found[1]
            candidates = self._digests_in(path)
            path.unlink()
            self._remove_empty_dirs(path.parent)
            if not self.noprune and candidates:
                self._remove_unreferenced(candidates, grace_seconds=0.0)

    def prune(self, grace_seconds: float = 0.0) -> Digests:
        """Delete blobs no manifest references (older than ``grace_seconds``) and empty manifest dirs.

        Does nothing while any manifest is corrupt: its references are unknown, so nothing is provably
        unused. Returns the digests removed.
        """
        with self._lock:
            for directory in sorted(self.manifests_dir.glob("**/"), key=lambda p: len(p.parts), reverse=True):
                self._remove_empty_dirs(directory)
            files = self.blobs_dir.iterdir() if self.blobs_dir.is_dir() else iter(())
            blobs = {d for d in (digest_of_blob_file(p.name) for p in files) if d}
            return self._remove_unreferenced(blobs, grace_seconds)

    def _digests_in(self, manifest_path: Path) -> set[str]:
        try:
            return mf.referenced_digests(mf.parse_manifest(manifest_path.read_bytes(), str(manifest_path)))
        except (CorruptManifest, OSError):
            return set()

    def _referenced(self) -> set[str] | None:
        """Digests used by any manifest, or None if some manifest is corrupt (then nothing is pruned)."""
        used: set[str] = set()
        for _, path in self._manifests():
            try:
                used |= mf.referenced_digests(mf.parse_manifest(path.read_bytes(), str(path)))
            except (CorruptManifest, OSError) as exc:
                log.warning("not pruning blobs: %s", getattr(exc, "message", exc))
                return None
        return used

    def _remove_unreferenced(self, candidates: set[str], grace_seconds: float) -> Digests:
        used = self._referenced()
        if used is None:
            return []
        removed = []
        cutoff = time.time() - grace_seconds
        for digest in sorted(candidates - used):
            path = self.blob_path(digest)
            try:
                if grace_seconds and path.stat().st_mtime > cutoff:
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(digest)
            log.info("removed unused blob %s", digest)
        return removed

    def _remove_empty_dirs(self, directory: Path) -> None:
        """Remove ``directory`` and its parents while empty, stopping at ``manifests/``."""
        while directory != self.manifests_dir and self.manifests_dir in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


def _parse(name: str | ModelName) -> ModelName:
    if isinstance(name, ModelName):
        name.validate()
        return name
    return ModelName.parse(name)


def _child_ignoring_case(directory: Path, part: str) -> str | None:
    wanted = part.casefold()
    try:
        names = sorted(entry.name for entry in os.scandir(directory))
    except OSError:
        return None
    return next((n for n in names if n.casefold() == wanted), None)

