"""Talking to an OCI distribution registry: an authenticated HTTP session, and blob download and upload.

Downloads are resumable: bytes go to ``blobs/sha256-<hex>-partial`` and a later pull continues with a
``Range`` request. A partial file is only ever touched under an exclusive ``flock``, so two pulls of the
same blob (in this process or another) never write it at once; the second waits and then finds the blob.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from ember import __version__
from ember.errors import RegistryError
from ember.store.digests import digest_hex, normalize_digest, sha256_file
from ember.store.files import fsync_dir, remove_quietly
from ember.store.store import ModelStore

Progress = dict[str, Any]

PROGRESS_INTERVAL_S = 0.1
UPLOAD_CHUNK = 8 * 1024 * 1024
LOCK_POLL_S = 0.2
USER_AGENT = f"ember/{__version__} (ollama-compatible)"
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class RegistrySession:
    """One repository on one registry; remembers the bearer token once a 401 challenge was answered."""

    client: httpx.AsyncClient
    base: str  # scheme://host[:port]
    repository: str  # namespace/model
    token: str | None = None

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{self.repository}/{path}"

    def absolute(self, location: str) -> str:
        """Upload locations may be relative to the registry."""
        return str(httpx.URL(self.base).join(location))

    async def request(self, method: str, url: str, *, what: str, headers: Mapping[str, str] | None = None,
                      content: bytes | None = None) -> httpx.Response:
        response = await self._send(method, url, what, headers, content, stream=False)
        await response.aread()
        return response

    @asynccontextmanager
    async def stream(self, url: str, *, what: str,
                     headers: Mapping[str, str] | None = None) -> AsyncIterator[httpx.Response]:
        response = await self._send("GET", url, what, headers, None, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def _send(self, method: str, url: str, what: str, headers: Mapping[str, str] | None,
                    content: bytes | None, *, stream: bool) -> httpx.Response:
        for attempt in range(2):
            all_headers = dict(headers or {})
            if self.token:
                all_headers["Authorization"] = f"Bearer {self.token}"
            request = self.client.build_request(method, url, headers=all_headers, content=content)
            try:
                response = await self.client.send(request, stream=stream)
            except httpx.HTTPError as exc:
                raise network_error(what, exc) from exc
            if response.status_code != 401 or attempt == 1:
                return response
            challenge = response.headers.get("www-authenticate", "")
            await response.aclose()
            self.token = await self._fetch_token(challenge, what)
        raise AssertionError("unreachable")

    async def _fetch_token(self, challenge: str, what: str) -> str:
        """Answer ``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` with an anonymous token request."""
        scheme, _, rest = challenge.partition(" ")
        if scheme.lower() != "bearer":
            raise RegistryError(f"{what}: the registry asks for {scheme or 'unknown'} authentication, "
                                "which Ember does not support")
        params = dict(_CHALLENGE_PARAM.findall(rest))
        realm = params.pop("realm", "")
        if not realm:
            raise RegistryError(f"{what}: the registry's authentication challenge has no realm")
        try:
            response = await self.client.get(realm, params={k: v for k, v in params.items()
                                                            if k in ("service", "scope")})
        except httpx.HTTPError as exc:
            raise network_error(f"{what}: token request to {realm}", exc) from exc
        if response.status_code != 200:
            raise RegistryError(f"{what}: unauthorized: the token service {realm} answered HTTP "
                                f"{response.status_code} (Ember requests anonymous tokens only)")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (json.JSONDecodeError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{what}: the token service {realm} sent no token")
        return token


def network_error(what: str, exc: httpx.HTTPError) -> RegistryError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return RegistryError(f"{what}: cannot connect to the registry: {detail}")
    if isinstance(exc, httpx.TimeoutException):
        return RegistryError(f"{what}: the registry timed out ({type(exc).__name__})")
    return RegistryError(f"{what}: {type(exc).__name__}: {detail}")


def status_error(response: httpx.Response, what: str) -> RegistryError:
    """An error naming the registry's own message when it sent the usual ``{"errors": [...]}`` body."""
    message = ""
    try:
        errors = response.json().get("errors") or []
        message = "; ".join(str(e.get("message") or e.get("code")) for e in errors)
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError, httpx.ResponseNotRead):
        pass
    suffix = f": {message}" if message else ""
    return RegistryError(f"{what}: registry answered HTTP {response.status_code}{suffix}")


def new_client() -> httpx.AsyncClient:
    # Cross-host redirects (registry -> CDN) are followed; httpx drops Authorization on them.
    return httpx.AsyncClient(follow_redirects=True, headers={"User-Agent": USER_AGENT},
                             timeout=httpx.Timeout(30.0, read=120.0))


class _Throttle:
    """Lets a progress update through at most every PROGRESS_INTERVAL_S."""

    def __init__(self) -> None:
        self.last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < PROGRESS_INTERVAL_S:
            return False
        self.last = now
        return True


def _progress(verb: str, digest: str, total: int, completed: int) -> Progress:
    return {"status": f"{verb} {digest_hex(digest)[:12]}", "digest": digest, "total": total,
            "completed": completed}


# ---------------------------------------------------------------------------------------------- download


async def _lock_partial(path: Path) -> BinaryIO:
    """Open ``path`` for appending under an exclusive lock, waiting while another pull holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(path, "ab")  # noqa: SIM115 - the caller closes it, which also releases the lock
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            await asyncio.sleep(LOCK_POLL_S)
            continue
        # The holder we waited for may have renamed the file into a blob; then this inode is not ours.
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return handle
        handle.close()


async def download_blob(session: RegistrySession, store: ModelStore,
                        descriptor: Mapping[str, Any]) -> AsyncIterator[Progress]:
    """Fetch one blob into its partial file, resuming from the bytes already there.

    The blob is not verified here; ``commit_download`` does that once all downloads are done.
    """
    digest, size = normalize_digest(descriptor["digest"]), int(descriptor["size"])
    if store.has_blob(digest):
        yield _progress("pulling", digest, size, size)
        return
    handle = await _lock_partial(store.partial_path(digest))
    try:
        if store.has_blob(digest):  # finished by the pull we waited for
            yield _progress("pulling", digest, size, size)
            return
        async for event in _fetch_into(session, handle, digest, size):
            yield event
    finally:
        handle.close()


async def _fetch_into(session: RegistrySession, handle: BinaryIO, digest: str,
                      size: int) -> AsyncIterator[Progress]:
    have = os.fstat(handle.fileno()).st_size
    if have > size:  # not a prefix of this blob; start over
        handle.truncate(0)
        have = 0
    yield _progress("pulling", digest, size, have)
    if have == size:
        return
    what = f"pull blob {digest}"
    throttle = _Throttle()
    throttle.due()
    try:
        headers = {"Range": f"bytes={have}-"} if have else {}
        async with session.stream(session.url(f"blobs/{digest}"), what=what, headers=headers) as response:
            if response.status_code == 200 and have:  # the server ignored Range: take the whole body
                handle.truncate(0)
                have = 0
            elif response.status_code not in (200, 206):
                await response.aread()
                raise status_error(response, what)
            async for chunk in response.aiter_bytes():
                handle.write(chunk)
                have += len(chunk)
                if have > size:
                    raise RegistryError(f"{what}: the registry sent more than the {size} bytes announced")
                if throttle.due():
                    yield _progress("pulling", digest, size, have)
    except httpx.HTTPError as exc:
        raise RegistryError(f"{network_error(what, exc).message} (pull again to resume)") from exc
    if have < size:
        raise RegistryError(f"{what}: the download ended at {have} of {size} bytes (pull again to resume)")
    yield _progress("pulling", digest, size, have)


async def commit_download(store: ModelStore, digest: str) -> None:
    """Verify a finished partial file against its digest and rename it into ``blobs/``.

    On a mismatch the partial is deleted, since resuming it could never produce the right bytes.
    """
    if store.has_blob(digest):
        return
    partial = store.partial_path(digest)
    handle = await _lock_partial(partial)
    try:
        if store.has_blob(digest):
            return
        actual = await asyncio.to_thread(sha256_file, partial)
        if actual != digest:
            remove_quietly(partial)
            raise RegistryError("digest mismatch, file must be downloaded again")
        os.replace(partial, store.blob_path(digest))
        fsync_dir(store.blobs_dir)
    finally:
        handle.close()


# ---------------------------------------------------------------------------------------------- upload


async def upload_blob(session: RegistrySession, store: ModelStore,
                      descriptor: Mapping[str, Any]) -> AsyncIterator[Progress]:
    """Upload one blob unless the registry has it: POST an upload, PATCH chunks, PUT ``?digest=``."""
    digest, size = normalize_digest(descriptor["digest"]), int(descriptor["size"])
    what = f"push blob {digest}"
    head = await session.request("HEAD", session.url(f"blobs/{digest}"), what=what)
    if head.status_code == 200:
        yield _progress("pushing", digest, size, size)
        return
    if head.status_code != 404:
        raise status_error(head, what)
    yield _progress("pushing", digest, size, 0)
    started = await session.request("POST", session.url("blobs/uploads/"), what=what)
    if started.status_code != 202 or "location" not in started.headers:
        raise status_error(started, what)
    location = session.absolute(started.headers["location"])
    offset = 0
    throttle = _Throttle()
    with open(store.blob_path(digest), "rb") as source:
        while offset < size:
            chunk = await asyncio.to_thread(source.read, min(UPLOAD_CHUNK, size - offset))
            if not chunk:
                raise RegistryError(f"{what}: the local blob is shorter than the {size} bytes its manifest says")
            location = await _patch(session, location, chunk, offset, what)
            offset += len(chunk)
            if throttle.due() or offset == size:
                yield _progress("pushing", digest, size, offset)
    final = httpx.URL(location).copy_merge_params({"digest": digest})
    done = await session.request("PUT", str(final), what=what, headers={"Content-Length": "0"})
    if done.status_code != 201:
        raise status_error(done, what)


async def _patch(session: RegistrySession, location: str, chunk: bytes, offset: int, what: str) -> str:
    headers = {"Content-Type": "application/octet-stream",
               "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
    response = await session.request("PATCH", location, what=what, headers=headers, content=chunk)
    if response.status_code != 202:
        raise status_error(response, what)
    return session.absolute(response.headers.get("location", location))
