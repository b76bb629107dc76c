"""Doctor checks about the model store: access, disk, leftovers, and memory for each model."""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import time
from pathlib import Path
from typing import Any

from ember.config import Settings
from ember.errors import EmberError
from ember.names import is_insecure
from ember.ops.findings import FAIL, INFO, PASS, WARN, Check, DoctorContext, Finding
from ember.ops.sizing import OVERHEAD_BYTES, Need, model_need
from ember.store import ModelStore, read_gguf
from ember.store.bundled import bundled_gguf_path

LOW_DISK_BYTES = 2 << 30
FULL_DISK_BYTES = 100 << 20
HEADROOM = 0.8  # a model needing more than this share of free memory leaves too little for the rest
PARTIAL_MIN_AGE_S = 60.0


def size(n: float) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


# -- access ----------------------------------------------------------------------------------------


def check_models_dir(context: DoctorContext) -> list[Finding]:
    root = context.settings.models_path
    if not os.path.lexists(root) and os.access(_existing_parent(root), os.X_OK):
        parent = _existing_parent(root)
        if os.access(parent, os.W_OK | os.X_OK):
            return [Finding("models_dir", INFO, f"{root} does not exist yet; Ember creates it on start")]
        return [Finding("models_dir", FAIL, f"{root} does not exist and {parent} is not writable by this user, "
                        "so Ember cannot create it", f"create it for the service user: mkdir -p {root} && "
                        f"chown USER {root}")]
    # os.path.isdir, unlike Path.exists on Python 3.11, answers False instead of raising when the parent is closed
    unreadable = [p for p in (root, root / "manifests", root / "blobs")
                  if (p == root or os.path.isdir(p)) and not os.access(p, os.R_OK | os.X_OK)]
    if unreadable:
        return [Finding("models_dir", FAIL, f"{unreadable[0]} is not readable and traversable by this user "
                        f"(uid {os.getuid()}); models in it are invisible", "give the service user access: "
                        f"chown -R USER {root} (or chmod -R u+rwX,g+rX); check with `sudo -u USER ember doctor`")]
    if not os.access(root, os.W_OK):
        return [Finding("models_dir", WARN, f"{root} is readable but not writable by this user: pulls and "
                        "creates will fail", f"chown -R USER {root}, or mount the volume read-write")]
    if os.geteuid() == 0:
        return [Finding("models_dir", INFO, f"{root} is readable and writable by root, which bypasses permissions",
                        "run `ember doctor` as the service user (sudo -u USER ember doctor) to check its access")]
    return [Finding("models_dir", PASS, f"{root} is readable and writable")]


def _existing_parent(path: Path) -> Path:
    for parent in path.parents:
        if os.path.isdir(parent):
            return parent
    return Path("/")


# -- disk ------------------------------------------------------------------------------------------


def check_disk(context: DoctorContext) -> list[Finding]:
    root = context.settings.models_path
    where = root if os.path.isdir(root) else _existing_parent(root)
    free = shutil.disk_usage(where).free
    if free < FULL_DISK_BYTES:
        return [Finding("disk", FAIL, f"{size(free)} free on the models volume ({where}): pulls, creates and "
                        "the database will fail", "free space or move OLLAMA_MODELS to a larger volume")]
    if free < LOW_DISK_BYTES:
        return [Finding("disk", WARN, f"only {size(free)} free on the models volume ({where})",
                        "free space or move OLLAMA_MODELS to a larger volume before pulling more models")]
    return [Finding("disk", PASS, f"{size(free)} free on the models volume ({where})")]


# -- leftovers -------------------------------------------------------------------------------------


def check_partials(context: DoctorContext) -> list[Finding]:
    blobs = context.settings.models_path / "blobs"
    if not os.access(blobs, os.R_OK | os.X_OK):
        return [Finding("partials", PASS, "no readable blobs directory, so no leftover downloads")]
    now = time.time()
    stale = [p for p in blobs.iterdir() if ("-partial" in p.name or p.name.startswith(".tmp-")) and p.is_file()
             and now - p.stat().st_mtime > PARTIAL_MIN_AGE_S and not _locked(p)]
    if not stale:
        return [Finding("partials", PASS, "no leftover partial downloads or temp files")]
    total = sum(p.stat().st_size for p in stale)
    names = ", ".join(p.name[:40] for p in stale[:3]) + (" ..." if len(stale) > 3 else "")
    return [Finding("partials", WARN, f"{len(stale)} leftover partial download(s) or temp file(s), {size(total)}, "
                    f"that no pull is writing: {names}", "pulling the same model again resumes a partial download; "
                    f"otherwise delete them: rm {blobs}/*-partial* {blobs}/.tmp-*")]


def _locked(path: Path) -> bool:
    """Whether a running pull holds the file (it keeps an exclusive flock while downloading)."""
    try:
        with path.open("rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


# -- memory ----------------------------------------------------------------------------------------


def available_memory(context: DoctorContext) -> tuple[int, str]:
    """Bytes this service may use, and where the number comes from (the setting wins over measuring)."""
    if context.settings.doctor_memory_limit:
        return context.settings.doctor_memory_limit, "EMBER_DOCTOR_MEMORY_LIMIT"
    found = [(_mem_available(context.proc), "MemAvailable")]
    cgroup = _cgroup_room(context)
    if cgroup is not None:
        found.append((cgroup, "the cgroup's memory.max"))
    return min(found)


def _mem_available(proc: Path) -> int:
    for line in (proc / "meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _cgroup_room(context: DoctorContext) -> int | None:
    """memory.max minus memory.current of this process's cgroup (v2), or None when unlimited or unknown."""
    try:
        relative = next(line.split("::", 1)[1] for line in (context.proc / "self" / "cgroup").read_text().splitlines()
                        if line.startswith("0::"))
        directory = context.sys / "fs" / "cgroup" / relative.lstrip("/")
        limit = (directory / "memory.max").read_text().strip()
        current = int((directory / "memory.current").read_text().strip())
    except (OSError, StopIteration, ValueError):
        return None
    return None if limit == "max" else max(int(limit) - current, 0)


def _local_need(settings: Settings, name: str, path: Path, params: dict[str, Any]) -> Need:
    info = read_gguf(path)
    num_ctx = params.get("num_ctx")
    parallel = dict(settings.model_parallel).get(name, settings.num_parallel)
    return model_need(path.stat().st_size, info.metadata,
                      num_ctx=num_ctx if isinstance(num_ctx, int) else settings.context_length,
                      num_parallel=parallel, kv_cache_type=settings.kv_cache_type)


def _models_to_size(settings: Settings, store: ModelStore) -> list[tuple[str, Path, dict[str, Any]]]:
    """(name, GGUF path, parameters) of every model in the store, plus the bundled one `ember serve` adds."""
    models = store.list() if store.manifests_dir.is_dir() else []
    found = [(m.name.display, m.model_path, m.params) for m in models]
    bundled = bundled_gguf_path()
    if settings.bundled_model and bundled and not any(m.name.display == settings.bundled_model for m in models):
        found.append((settings.bundled_model, bundled, {}))
    return found


def _memory_finding(name: str, need: Need, available: int, source: str, check: str = "memory") -> Finding:
    detail = (f"{name} needs about {size(need.total)} (file {size(need.file_bytes)} + KV cache {size(need.kv_bytes)} "
              f"for num_ctx {need.num_ctx} x {need.num_parallel} parallel + {size(need.overhead_bytes)} overhead); "
              f"{size(available)} available ({source})")
    fix = (f"give the host or pod at least {size(need.total)}, or lower OLLAMA_NUM_PARALLEL / "
           "OLLAMA_CONTEXT_LENGTH, or set EMBER_KV_CACHE_TYPE=q8_0")
    if need.total > available:
        return Finding(check, FAIL, detail + ": it will not fit (the runner would be OOM-killed)", fix)
    if need.total > available * HEADROOM:
        return Finding(check, WARN, detail + ": little room is left for anything else", fix)
    return Finding(check, PASS, detail)


def check_memory(context: DoctorContext) -> list[Finding]:
    available, source = available_memory(context)
    try:
        models = _models_to_size(context.settings, ModelStore(context.settings.models_path))
    except OSError as exc:
        return [Finding("memory", WARN, f"cannot list the models: {exc.strerror}", "see the models_dir check")]
    if not models:
        return [Finding("memory", INFO, f"no models in the store yet; {size(available)} available ({source})",
                        "run `ember doctor --model NAME` to size a model before pulling it")]
    found = []
    for name, path, params in models:
        try:
            found.append(_memory_finding(name, _local_need(context.settings, name, path, params), available, source))
        except (EmberError, OSError) as exc:
            found.append(Finding("memory", WARN, f"cannot size {name}: {exc}",
                                 f"check its file, or remove it with `ember rm {name}`"))
    return found


# -- one named model, pulled or not ----------------------------------------------------------------


def check_model(context: DoctorContext) -> list[Finding]:
    name = context.model
    if not name:
        return []
    settings = context.settings
    store = ModelStore(settings.models_path)
    if store.manifests_dir.is_dir() and store.exists(name):
        model = store.resolve(name)
        need = _local_need(settings, model.name.display, model.model_path, model.params)
        return [_memory_finding(model.name.display, need, *available_memory(context), check="model")]
    try:
        manifest = asyncio.run(_remote_manifest(name))
    except EmberError as exc:
        return [Finding("model", FAIL, f"{name} is not in the store and its registry manifest could not be read: "
                        f"{exc.message}", "check the name (ember list, or the registry's library page)")]
    return _remote_findings(context, name, manifest)


async def _remote_manifest(name: str) -> dict[str, Any]:
    from ember.store.registry import remote_manifest

    return await remote_manifest(name, insecure=is_insecure(name))


def _remote_findings(context: DoctorContext, name: str, manifest: dict[str, Any]) -> list[Finding]:
    layers = manifest.get("layers", [])
    download = sum(int(layer.get("size", 0)) for layer in layers)
    weights = sum(int(layer.get("size", 0)) for layer in layers if str(layer.get("mediaType", "")).endswith(".model"))
    available, source = available_memory(context)
    need = weights + OVERHEAD_BYTES
    where = context.settings.models_path
    free = shutil.disk_usage(where if os.path.isdir(where) else _existing_parent(where)).free
    found = [Finding("model", FAIL if download > free else PASS,
                     f"{name}: {size(download)} to download, {size(free)} free on the models volume",
                     "free space or move OLLAMA_MODELS to a larger volume" if download > free else "nothing to do")]
    detail = (f"{name} needs at least {size(need)} (file {size(weights)} + {size(OVERHEAD_BYTES)} overhead; the KV "
              f"cache comes on top and is known after the pull: run `ember doctor` then); {size(available)} "
              f"available ({source})")
    verdict = FAIL if need > available else PASS
    found.append(Finding("model", verdict, detail + (": it will not fit" if verdict == FAIL else ""),
                         f"give the host or pod more than {size(need)}, or choose a smaller or more quantized tag"
                         if verdict == FAIL else "nothing to do"))
    return found


CHECKS: dict[str, Check] = {"models_dir": check_models_dir, "disk": check_disk, "partials": check_partials,
                            "memory": check_memory, "model": check_model}
