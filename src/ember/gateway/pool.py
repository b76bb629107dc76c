"""The engine nodes behind the web role: a health view of each, and the choice of node per request.

Every ``check_interval`` seconds each node is asked ``/api/version`` (alive?), ``/api/ps`` (what is loaded,
how busy) and ``/api/tags`` (what is in its store). A request goes to a node that has the model loaded with a
free slot, else one that has it in its store, else the least loaded; ties go to the node with fewer requests
in flight from this gateway, which spreads a burst over equal nodes. A node that fails a request or a check
is taken out for ``cooldown`` seconds; after that the health loop checks it again and puts it back.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from ember.errors import EngineUnavailable, InvalidModelName
from ember.names import ModelName

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0


def model_key(name: str) -> str:
    """The form two spellings of one model share (``x`` and ``x:latest``); unparsable names stay as they are."""
    try:
        return ModelName.parse(name).key
    except InvalidModelName:
        return name


@dataclass
class Node:
    url: str
    name: str
    healthy: bool = False
    checked: bool = False
    error: str = "not checked yet"
    cool_until: float = 0.0
    loaded: dict[str, tuple[int, int]] = field(default_factory=dict)  # model key -> (active, slots) at check
    stored: frozenset[str] = frozenset()
    in_flight: Counter[str] = field(default_factory=Counter)  # model key -> requests this gateway has open

    @property
    def load(self) -> int:
        return sum(self.in_flight.values())

    def usable(self, now: float) -> bool:
        return self.healthy and now >= self.cool_until

    def rank(self, key: str | None) -> int:
        """0: loaded with a free slot; 1: in the store (or loaded but busy); 2: neither, as far as we know."""
        if key is None:
            return 0
        if key in self.loaded:
            active, slots = self.loaded[key]
            if max(active, self.in_flight[key]) < slots:
                return 0
            return 1
        return 1 if key in self.stored else 2


def node_name(url: str) -> str:
    return urlsplit(url).netloc or url


class EnginePool:
    def __init__(self, urls: Iterable[str], client: httpx.AsyncClient, *, headers: dict[str, str],
                 check_interval: float = 5.0, cooldown: float = 10.0,
                 on_health: Callable[[str, bool], None] | None = None) -> None:
        self.nodes = [Node(url=url.rstrip("/"), name=node_name(url)) for url in urls]
        self.client = client
        self.headers = headers
        self.check_interval = check_interval
        self.cooldown = cooldown
        self.on_health = on_health or (lambda node, healthy: None)
        self._turn = itertools.count()
        self._task: asyncio.Task[None] | None = None

    # --- choosing -------------------------------------------------------------------------------------

    def choose(self, model: str | None, exclude: Iterable[Node] = ()) -> Node:
        """The best node for ``model`` not in ``exclude``; EngineUnavailable when there is none."""
        now, skip = time.monotonic(), set(map(id, exclude))
        candidates = [n for n in self.nodes if id(n) not in skip and n.usable(now)]
        if not candidates:  # no healthy node: try one whose cool-down is over, rather than fail outright
            candidates = [n for n in self.nodes if id(n) not in skip and now >= n.cool_until]
        if not candidates:
            raise EngineUnavailable(f"no engine node is available ({self.describe_failures()})")
        key = model_key(model) if model else None
        turn = next(self._turn)
        return min(candidates,
                   key=lambda n: (n.rank(key), n.load, (self.nodes.index(n) - turn) % len(self.nodes)))

    def find(self, name: str) -> Node | None:
        """The node called ``name`` (its host:port) or with that base URL."""
        return next((n for n in self.nodes if name in (n.name, n.url)), None)

    def describe_failures(self) -> str:
        return "; ".join(f"{n.name}: {n.error}" for n in self.nodes if not n.healthy) or "all nodes are busy"

    def healthy_nodes(self) -> list[Node]:
        now = time.monotonic()
        return [n for n in self.nodes if n.usable(now)]

    # --- bookkeeping from requests --------------------------------------------------------------------

    def started(self, node: Node, model: str | None) -> None:
        node.in_flight[model_key(model) if model else ""] += 1

    def ended(self, node: Node, model: str | None) -> None:
        key = model_key(model) if model else ""
        node.in_flight[key] -= 1
        if node.in_flight[key] <= 0:
            del node.in_flight[key]

    def mark_failed(self, node: Node, error: str) -> None:
        if node.healthy or node.cool_until <= time.monotonic():
            log.warning("engine node %s failed (%s); out of rotation for %gs", node.name, error, self.cooldown)
        self._set_health(node, False, error)
        node.cool_until = time.monotonic() + self.cooldown

    # --- health checks --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Check every node once (so the first request has a view), then keep checking in the background."""
        await self.check_all()
        self._task = asyncio.create_task(self._loop(), name="engine-health")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                await self.check_all()
            except Exception:  # the loop must outlive any one bad answer
                log.exception("engine health check failed unexpectedly")

    async def check_all(self) -> None:
        now = time.monotonic()
        await asyncio.gather(*(self.check(n) for n in self.nodes if now >= n.cool_until))

    async def check(self, node: Node) -> bool:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self._get(node, "/api/version")
                ps, tags = await asyncio.gather(self._get(node, "/api/ps"), self._get(node, "/api/tags"))
        except (httpx.HTTPError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            error = _describe(exc)
            if node.healthy or not node.checked:
                log.warning("engine node %s is unhealthy: %s", node.name, error)
            if node.checked:  # not on the first check: an engine starting next to us gets no cool-down
                node.cool_until = time.monotonic() + self.cooldown
            self._set_health(node, False, error)
            return False
        node.loaded = {model_key(m["name"]): (int(m.get("active", 0)), int(m.get("slots", 1)))
                       for m in ps["models"]}
        node.stored = frozenset(model_key(m["name"]) for m in tags["models"])
        if not node.healthy and node.checked:
            log.info("engine node %s is healthy again", node.name)
        self._set_health(node, True, "")
        return True

    async def _get(self, node: Node, path: str) -> dict[str, Any]:
        response = await self.client.get(node.url + path, headers=self.headers, timeout=CHECK_TIMEOUT_S)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError(f"{path} answered {type(body).__name__}, not an object")
        return body

    def _set_health(self, node: Node, healthy: bool, error: str) -> None:
        node.healthy, node.error, node.checked = healthy, error, True
        self.on_health(node.name, healthy)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        hint = " (wrong or missing EMBER_ENGINE_KEY?)" if status == 401 else ""
        return f"HTTP {status}{hint}"
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "no answer in time"
    return str(exc) or type(exc).__name__
