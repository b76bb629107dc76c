"""Which models are loaded, who may use them, and when they go away.

- Each loaded model has ``num_parallel`` slots. Requests beyond that wait FIFO; at most ``max_queue`` may
  wait per model whether it is loaded, loading or unloading, and the next one gets ServerBusy (503) at once.
- A request for a context no larger than the loaded one is served by it; a larger one reloads.
- Keep-alive: an idle model expires ``keep_alive`` seconds after its last request (0 = at once, inf = never);
  a request's ``keep_alive`` sticks to the loaded model. Over ``max_loaded_models`` the least recently
  used idle model is evicted.
- A dead runner (crashed, killed, wedged) is dropped and the next request loads a fresh one.

Runners come from an injected factory (``RunnerSpec -> Runner``): the real one starts a child process
(engine.runner.RunnerHandle); tests of queueing and eviction pass a scripted fake.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ember.config import Settings
from ember.engine.messages import Done, RunnerInfo, RunnerSpec, Token
from ember.engine.runner import RunnerHandle
from ember.errors import ServerBusy
from ember.names import ModelName
from ember.store import LocalModel

log = logging.getLogger(__name__)


class Runner(Protocol):
    """What the scheduler and the engine need from a loaded model's runner."""

    dead_reason: str | None

    @property
    def alive(self) -> bool: ...

    async def wait_ready(self, timeout: float) -> RunnerInfo: ...

    def kill(self, reason: str) -> None: ...

    async def close(self) -> None: ...

    def generate(self, tokens: list[int], options: dict[str, Any], stop: tuple[str, ...], num_predict: int,
                 num_ctx: int, deadline: float, *, top_logprobs: int | None = None,
                 keep: int | None = None
                 ) -> AsyncGenerator[Token | Done, None]: ...

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]: ...

    async def embed(self, texts: list[str], truncate: bool, num_ctx: int) -> list[tuple[list[float], int]]: ...


RunnerFactory = Callable[[RunnerSpec], Runner]


@dataclass(frozen=True)
class LoadedStatus:
    """One loaded model as /api/ps reports it."""

    model: LocalModel
    expires_at: float  # wall-clock seconds
    active: int
    queued: int
    size: int
    context_length: int
    slots: int
    kv_size_per_slot: int


@dataclass
class Loaded:
    """One model with a live runner."""

    key: str
    model: LocalModel
    runner: Runner
    info: RunnerInfo
    num_ctx: int
    keep_alive: float
    slots: asyncio.Semaphore
    active: int = 0
    last_used: float = field(default_factory=time.monotonic)
    expires_at: float = math.inf  # wall-clock seconds; inf while busy or kept forever

    @property
    def idle(self) -> bool:
        return self.active == 0

    def touch_expiry(self) -> None:
        self.expires_at = time.time() + self.keep_alive if self.keep_alive != math.inf else math.inf


@dataclass
class Lease:
    """A slot on a loaded model, held for one request."""

    loaded: Loaded
    load_duration: float

    @property
    def runner(self) -> Runner:
        return self.loaded.runner


def process_runner_factory(settings: Settings) -> RunnerFactory:
    """The real factory: each runner is a child process."""
    return lambda spec: RunnerHandle(spec, stall_timeout=settings.stall_timeout)


class Scheduler:
    def __init__(self, settings: Settings, runner_factory: RunnerFactory | None = None, *,
                 reap_interval: float = 1.0) -> None:
        self.settings = settings
        self.runner_factory = runner_factory or process_runner_factory(settings)
        self.reap_interval = reap_interval
        self.loaded: dict[str, Loaded] = {}
        self.waiting: dict[str, int] = {}
        self.runner_restarts: dict[str, int] = {}  # model display name -> dead runners dropped (for /metrics)
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_forever())

    async def close(self) -> None:
        if self._reaper:
            self._reaper.cancel()
        for loaded in list(self.loaded.values()):
            await self._unload(loaded)

    @property
    def supervising(self) -> bool:
        """Whether the reaper runs: it unloads expired models and drops dead runners (for /readyz)."""
        return self._reaper is not None and not self._reaper.done()

    # -- leasing -------------------------------------------------------------------------------------

    @asynccontextmanager
    async def lease(self, model: LocalModel, *, num_ctx: int | None, keep_alive: float | None,
                    num_parallel: int | None = None) -> AsyncIterator[Lease]:
        key = model.name.key
        if self.waiting.get(key, 0) >= self.settings.max_queue:
            raise ServerBusy()
        started = time.monotonic()
        self.waiting[key] = self.waiting.get(key, 0) + 1
        try:
            loaded = await self._slot(model, num_ctx, num_parallel)
        finally:
            self.waiting[key] -= 1
        if keep_alive is not None:
            loaded.keep_alive = keep_alive
        loaded.active += 1
        loaded.expires_at = math.inf
        try:
            yield Lease(loaded, time.monotonic() - started)
        finally:
            loaded.active -= 1
            loaded.slots.release()
            loaded.last_used = time.monotonic()
            await self._after_release(loaded)

    async def _slot(self, model: LocalModel, num_ctx: int | None, num_parallel: int | None) -> Loaded:
        while True:
            loaded = await self._ensure_loaded(model, num_ctx, num_parallel)
            await loaded.slots.acquire()
            if loaded.runner.alive and self.loaded.get(loaded.key) is loaded:
                return loaded
            loaded.slots.release()  # it died or was replaced while we queued: go round again

    async def _after_release(self, loaded: Loaded) -> None:
        if not loaded.idle:
            return
        if loaded.keep_alive <= 0 or not loaded.runner.alive:
            await self._unload(loaded)
        else:
            loaded.touch_expiry()
        async with self._changed:
            self._changed.notify_all()

    # -- loading and unloading -----------------------------------------------------------------------

    async def _ensure_loaded(self, model: LocalModel, num_ctx: int | None, num_parallel: int | None) -> Loaded:
        key = model.name.key
        current = self.loaded.get(key)
        if current is not None and self._can_serve(current, model, num_ctx):
            return current  # fast path: never wait behind another model's load
        async with self._load_lock:
            current = self.loaded.get(key)
            if current is not None and self._can_serve(current, model, num_ctx):
                return current
            if current is not None:
                log.info("reloading %s: %s", model.name.display, self._reload_reason(current, model, num_ctx))
                await self._drain_and_unload(current)
            await self._make_room()
            loaded = await self._load(model, num_ctx, num_parallel)
            self.loaded[key] = loaded
            return loaded

    def _can_serve(self, loaded: Loaded, model: LocalModel, num_ctx: int | None) -> bool:
        if not loaded.runner.alive or loaded.model.digest != model.digest:
            return False
        wanted = self._wanted_ctx(num_ctx, loaded.info.n_ctx_train)
        return wanted <= loaded.num_ctx

    def _reload_reason(self, loaded: Loaded, model: LocalModel, num_ctx: int | None) -> str:
        if not loaded.runner.alive:
            return f"runner is gone ({loaded.runner.dead_reason})"
        if loaded.model.digest != model.digest:
            return "the model changed on disk"
        return f"requested num_ctx {num_ctx} is larger than the loaded {loaded.num_ctx}"

    def _wanted_ctx(self, num_ctx: int | None, n_ctx_train: int) -> int:
        wanted = num_ctx or self.settings.context_length
        return min(wanted, n_ctx_train) if n_ctx_train else wanted

    async def _load(self, model: LocalModel, num_ctx: int | None, num_parallel: int | None) -> Loaded:
        parallel = num_parallel or self._slots_for(model)
        spec = RunnerSpec(
            name=model.name.display,
            model_path=str(model.model_path),
            adapters=tuple(str(p) for p in model.adapter_paths),
            num_ctx=max(num_ctx or self.settings.context_length, 16),
            num_parallel=parallel,
            num_batch=self.settings.num_batch,
            num_thread=self.settings.num_thread or _cpu_count(),
            num_gpu=self.settings.num_gpu,
            kv_cache_type=self.settings.kv_cache_type,
            flash_attention=self.settings.flash_attention,
            shared_prefix=self.settings.shared_prefix,
            prompt_lookup=self.settings.prompt_lookup,
        )
        log.info("loading %s (num_ctx=%d, parallel=%d)", model.name.display, spec.num_ctx, parallel)
        runner = self.runner_factory(spec)
        info = await runner.wait_ready(self.settings.load_timeout)
        return Loaded(key=model.name.key, model=model, runner=runner, info=info, num_ctx=info.num_ctx,
                      keep_alive=self.settings.keep_alive, slots=asyncio.Semaphore(parallel))

    def _slots_for(self, model: LocalModel) -> int:
        """The model's EMBER_MODEL_PARALLEL entry, else OLLAMA_NUM_PARALLEL."""
        for name, count in self.settings.model_parallel:
            if ModelName.parse(name).key == model.name.key:
                return max(1, count)
        return max(1, self.settings.num_parallel)

    async def _make_room(self) -> None:
        """Drop dead runners, then evict least recently used idle models until one more fits."""
        for loaded in [x for x in self.loaded.values() if not x.runner.alive]:
            await self._unload(loaded)
        while len(self.loaded) >= max(1, self.settings.max_loaded_models):
            idle = [x for x in self.loaded.values() if x.idle and not self.waiting.get(x.key)]
            if idle:
                victim = min(idle, key=lambda x: x.last_used)
                log.info("evicting %s to make room", victim.model.name.display)
                await self._unload(victim)
                continue
            async with self._changed:
                await self._changed.wait()

    async def _drain_and_unload(self, loaded: Loaded) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: loaded.idle or not loaded.runner.alive)
        await self._unload(loaded)

    async def _unload(self, loaded: Loaded) -> None:
        if self.loaded.get(loaded.key) is loaded:
            del self.loaded[loaded.key]
            if not loaded.runner.alive:  # it died (crash, kill, wedge): the next request starts a new one
                name = loaded.model.name.display
                self.runner_restarts[name] = self.runner_restarts.get(name, 0) + 1
        await loaded.runner.close()
        log.info("unloaded %s", loaded.model.name.display)

    async def unload(self, model: LocalModel) -> bool:
        """Unload now if idle, else as soon as its requests finish (keep_alive 0). True if it was loaded."""
        loaded = self.loaded.get(model.name.key)
        if loaded is None:
            return False
        loaded.keep_alive = 0
        if loaded.idle:
            await self._unload(loaded)
        return True

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval)
            try:
                await self._reap()
            except Exception:  # the reaper must outlive any one bad unload
                log.exception("unloading expired models failed")

    async def _reap(self) -> None:
        now = time.time()
        for loaded in list(self.loaded.values()):
            if loaded.idle and (loaded.expires_at <= now or not loaded.runner.alive):
                await self._unload(loaded)

    # -- reporting -----------------------------------------------------------------------------------

    def running(self) -> list[LoadedStatus]:
        rows: list[LoadedStatus] = []
        for loaded in self.loaded.values():
            if not loaded.runner.alive:
                continue
            expires = loaded.expires_at
            if expires == math.inf and loaded.keep_alive != math.inf:
                expires = time.time() + loaded.keep_alive  # busy: Ollama reports now + keep_alive
            rows.append(LoadedStatus(
                model=loaded.model,
                expires_at=expires,
                active=loaded.active,
                queued=self.waiting.get(loaded.key, 0),
                size=loaded.info.size,
                context_length=loaded.num_ctx,
                slots=loaded.info.num_parallel,
                kv_size_per_slot=loaded.info.kv_size_per_slot,
            ))
        rows.sort(key=lambda r: r.expires_at, reverse=True)
        return rows


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
