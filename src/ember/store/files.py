"""Crash-safe file writes: write a temp file in ``blobs/``, fsync it, rename it into place, fsync the dir.

A reader therefore sees either the old file or the complete new one, never a torn one. Temp files are
named ``.tmp-<pid>-<random>`` so that ``ModelStore.init`` can tell the leftovers of a dead process from
the files a live one is still writing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO

from ember.errors import BadRequest

TEMP_PREFIX = ".tmp-"


def temp_path(directory: Path) -> Path:
    return directory / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"


def temp_owner(name: str) -> int | None:
    """The pid encoded in a temp file name, or None if the name does not carry one."""
    pid_text = name.removeprefix(TEMP_PREFIX).split("-", 1)[0]
    return int(pid_text) if pid_text.isdigit() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class HashingWriter:
    """A temp file that hashes what is written; ``commit`` verifies and renames it into place."""

    def __init__(self, temp_dir: Path) -> None:
        self.path = temp_path(temp_dir)
        self._handle: BinaryIO | None = open(self.path, "xb")  # noqa: SIM115 - closed in commit/discard
        self._hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        assert self._handle is not None, "write after commit or discard"
        self._handle.write(data)
        self._hasher.update(data)
        self.size += len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hasher.hexdigest()

    def finish(self, expected: str | None) -> str:
        """Flush and fsync; raise BadRequest (and discard) if the content does not match ``expected``."""
        assert self._handle is not None, "finish after commit or discard"
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = None
        if expected is not None and self.digest != expected:
            self.discard()
            raise BadRequest(f'digest mismatch, expected "{expected}", got "{self.digest}"')
        return self.digest

    def rename_to(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)
        fsync_dir(target.parent)

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        remove_quietly(self.path)


def write_atomic(target: Path, data: bytes, temp_dir: Path) -> None:
    """Replace ``target`` with ``data`` atomically (temp file in ``temp_dir`` on the same filesystem)."""
    writer = HashingWriter(temp_dir)
    try:
        writer.write(data)
        writer.finish(None)
        writer.rename_to(target)
    except BaseException:
        writer.discard()
        raise
