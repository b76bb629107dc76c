"""EMBER_PRELOAD: make models present before the server reports ready.

Entries are comma separated. ``name`` pulls the model unless it is already in the store (a name written with
``http://`` uses a plain-HTTP registry). ``name=PATH`` creates it from a GGUF file or a Modelfile on this
machine unless it exists. Any failure stops start-up with the reason, so a broken rollout is loud.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from ember.errors import EmberError
from ember.names import ModelName, is_insecure
from ember.store import ModelStore

log = logging.getLogger(__name__)


class PreloadFailed(RuntimeError):
    pass


async def preload(store: ModelStore, entries: tuple[str, ...]) -> None:
    for entry in entries:
        name, _, source = entry.partition("=")
        try:
            await _preload_one(store, name.strip(), source.strip())
        except EmberError as exc:
            raise PreloadFailed(f"preloading {entry!r} failed: {exc.message}") from exc


async def _preload_one(store: ModelStore, name: str, source: str) -> None:
    if store.exists(ModelName.parse(name)):
        log.info("preload: %s is already present", name)
        return
    if source:
        await run_in_threadpool(_create, store, name, Path(source).expanduser())
    else:
        from ember.store.registry import pull

        async for progress in pull(store, name, insecure=is_insecure(name)):
            if "total" not in progress:
                log.info("preload %s: %s", name, progress["status"])
    log.info("preload: %s is ready", name)


def _create(store: ModelStore, name: str, path: Path) -> None:
    from ember.store.create import create_model

    body: dict[str, Any] = {"model": name}
    if path.suffix.lower() == ".gguf":
        body["from"] = str(path.resolve())
    else:
        from ember.modelfile import parse_modelfile

        body.update(parse_modelfile(path.read_text(encoding="utf-8"), path.parent).to_create_fields())
    for progress in create_model(store, body):
        log.debug("preload %s: %s", name, progress.get("status"))
