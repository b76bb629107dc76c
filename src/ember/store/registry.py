"""Pull and push models from and to an OCI distribution registry, the way Ollama does.

Both are async generators of Ollama's progress objects (``{"status": ...}``, plus ``digest``/``total``/
``completed`` while a blob moves). Errors are raised, typed: RegistryError (502), RegistryNotFound (404),
InvalidModelName/BadRequest (400), ModelNotFound for pushing a model that is not here.

Pull writes blobs first (each verified against its digest) and the manifest last, byte for byte as the
registry sent it, so the local model digest equals the registry's manifest digest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from ember.errors import BadRequest, CorruptManifest, ModelNotFound, RegistryError, RegistryNotFound
from ember.names import ModelName, is_insecure
from ember.store import manifest as mf
from ember.store.digests import normalize_digest
from ember.store.files import remove_quietly
from ember.store.store import ModelStore
from ember.store.transfer import (
    Progress,
    RegistrySession,
    commit_download,
    download_blob,
    new_client,
    status_error,
    upload_blob,
)

__all__ = ["pull", "push", "remote_manifest"]

_MANIFEST_ACCEPT = ", ".join((mf.MANIFEST_MEDIA_TYPE, "application/vnd.oci.image.manifest.v1+json"))


async def pull(store: ModelStore, name: str, *, insecure: bool = False,
               client: httpx.AsyncClient | None = None) -> AsyncGenerator[Progress, None]:
    """Download ``name`` from its registry (https, or http when ``insecure``) into ``store``."""
    parsed = _parse_name(name, insecure)
    yield {"status": "pulling manifest"}
    async with _session(parsed, insecure, client) as session:
        raw = await _fetch_manifest(session, parsed.tag)
        manifest = _parse_remote_manifest(raw)
        previous = _local_digests(store, parsed)
        descriptors = _blob_descriptors(manifest)
        for descriptor in descriptors:
            async for event in download_blob(session, store, descriptor):
                yield event
    yield {"status": "verifying sha256 digest"}
    for descriptor in descriptors:
        await commit_download(store, normalize_digest(descriptor["digest"]))
    yield {"status": "writing manifest"}
    await asyncio.to_thread(store.write_manifest, parsed, raw)
    unused = previous - mf.referenced_digests(manifest)
    if unused and not store.noprune:
        yield {"status": "removing unused layers"}
        await asyncio.to_thread(_remove_unused, store, unused)
    yield {"status": "success"}


async def push(store: ModelStore, name: str, *, insecure: bool = False,
               client: httpx.AsyncClient | None = None) -> AsyncGenerator[Progress, None]:
    """Upload local model ``name`` (blobs the registry lacks, then the manifest) to its registry."""
    parsed = _parse_name(name, insecure)
    yield {"status": "retrieving manifest"}
    raw = store.manifest_bytes(parsed)
    manifest = mf.parse_manifest(raw, parsed.display)
    async with _session(parsed, insecure, client) as session:
        for descriptor in _blob_descriptors(manifest):
            async for event in upload_blob(session, store, descriptor):
                yield event
        yield {"status": "pushing manifest"}
        what = "push model manifest"
        media_type = manifest.get("mediaType") or mf.MANIFEST_MEDIA_TYPE
        response = await session.request("PUT", session.url(f"manifests/{parsed.tag}"), what=what,
                                         headers={"Content-Type": str(media_type)}, content=raw)
        if response.status_code not in (200, 201, 202):
            raise status_error(response, what)
    yield {"status": "success"}


async def remote_manifest(name: str, *, insecure: bool = False,
                          client: httpx.AsyncClient | None = None) -> dict[str, Any]:
    """The registry's manifest for ``name``, parsed and checked, without pulling anything (`ember doctor`)."""
    parsed = _parse_name(name, insecure)
    async with _session(parsed, insecure, client) as session:
        return _parse_remote_manifest(await _fetch_manifest(session, parsed.tag))


def _parse_name(name: str, insecure: bool) -> ModelName:
    parsed = ModelName.parse(name)
    if is_insecure(name) and not insecure:
        raise BadRequest("insecure protocol http: set insecure to use a registry over plain HTTP")
    return parsed


@asynccontextmanager
async def _session(name: ModelName, insecure: bool,
                   client: httpx.AsyncClient | None) -> AsyncIterator[RegistrySession]:
    base = f"{'http' if insecure else 'https'}://{name.host}"
    if client is not None:
        yield RegistrySession(client, base, name.repository)
        return
    async with new_client() as own:
        yield RegistrySession(own, base, name.repository)


async def _fetch_manifest(session: RegistrySession, tag: str) -> bytes:
    what = "pull model manifest"
    response = await session.request("GET", session.url(f"manifests/{tag}"), what=what,
                                     headers={"Accept": _MANIFEST_ACCEPT})
    if response.status_code == 404:
        raise RegistryNotFound(f"{what}: file does not exist")
    if response.status_code != 200:
        raise status_error(response, what)
    return response.content


def _parse_remote_manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = mf.parse_manifest(raw, "from the registry")
    except CorruptManifest as exc:
        raise RegistryError(f"pull model manifest: {exc.message}") from None
    if not manifest["layers"]:
        raise RegistryError("pull model manifest: the manifest has no layers")
    return manifest


def _blob_descriptors(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Layers then config, the order Ollama transfers them in."""
    config = manifest.get("config")
    return [*manifest["layers"], *([config] if config else [])]


def _local_digests(store: ModelStore, name: ModelName) -> set[str]:
    """Blobs of the version of ``name`` already here (candidates for removal after the pull)."""
    try:
        return mf.referenced_digests(mf.parse_manifest(store.manifest_bytes(name), name.display))
    except (ModelNotFound, CorruptManifest):
        return set()


def _remove_unused(store: ModelStore, candidates: Iterable[str]) -> None:
    """Delete the candidates no manifest references; nothing at all if some manifest is unreadable."""
    models = store.list()
    if store.problems:
        return
    used: set[str] = set()
    for model in models:
        used |= mf.referenced_digests(model.manifest)
    for digest in set(candidates) - used:
        remove_quietly(store.blob_path(digest))
