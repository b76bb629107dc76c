"""Answers being generated in this process, and the Server-Sent Events that follow a message to its end.

A follower gets ``snapshot`` (the text so far), then ``delta`` events, then ``done`` with the stored message.
If the answer is generated here, the snapshot and the deltas come from memory; if another replica generates
it, this one polls the database and sends what was added since. A follower that leaves only unsubscribes:
the answer goes on (that is what lets a reloaded page pick it up again).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio.to_thread

from ember.db.chats import STREAMING, Message, fail_abandoned, read_message
from ember.db.database import Database
from ember.db.tables import utcnow

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
POLL_S = 0.5
# A message still "streaming" in the database but untouched this long lost its generator (a replica died).
ABANDONED_AFTER = timedelta(seconds=30)  # the generator stores at least every 5 s
END = None  # what a listener's queue gets when the answer has ended (and its final state is stored)

CLOSE_WAIT_S = 10.0
STOP, SHUTDOWN = "stop", "shutdown"

Delta = dict[str, str]


@dataclass
class Live:
    """One answer generated in this process: its text so far and who is following it."""

    message_id: str
    content: str = ""
    thinking: str = ""
    ending: str | None = None  # why it is being ended early: STOP or SHUTDOWN
    relaying: bool = False  # the engine's answer is flowing: cancelling the task now closes it cleanly
    finished: bool = False  # stored for good; followers read the final message from the database
    task: asyncio.Task[None] | None = None
    listeners: set[asyncio.Queue[Delta | None]] = field(default_factory=set)

    def interrupt(self, why: str) -> None:
        """End the answer early. While the pipeline is still setting up the request (limits, choosing a node,
        waiting for the engine's first byte) the task is not cancelled: it checks ``ending`` once the answer
        starts flowing, so the request is finished (audit, limits) the ordinary way."""
        self.ending = self.ending or why
        if self.relaying and self.task is not None:
            self.task.cancel()

    def add(self, content: str, thinking: str) -> None:
        if not content and not thinking:
            return
        self.content += content
        self.thinking += thinking
        delta = {k: v for k, v in (("content", content), ("thinking", thinking)) if v}
        for queue in self.listeners:
            queue.put_nowait(delta)

    def subscribe(self) -> tuple[dict[str, Any], asyncio.Queue[Delta | None]]:
        """The text so far and a queue of what follows, taken together so nothing falls between them."""
        queue: asyncio.Queue[Delta | None] = asyncio.Queue()
        self.listeners.add(queue)
        if self.finished:  # it ended a moment ago, before this process forgot it
            queue.put_nowait(END)
        return {"content": self.content, "thinking": self.thinking, "status": STREAMING}, queue

    def ended(self) -> None:
        self.finished = True
        for queue in self.listeners:
            queue.put_nowait(END)


class Generations:
    """The answers this process is generating, and the background tasks it owns (cancelled at shutdown)."""

    def __init__(self) -> None:
        self.live: dict[str, Live] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def start(self, message_id: str, work: Callable[[Live], Coroutine[Any, Any, None]]) -> Live:
        live = Live(message_id)
        self.live[message_id] = live
        live.task = self.spawn(work(live))
        live.task.add_done_callback(lambda _: self.live.pop(message_id, None))
        return live

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def stop(self, message_id: str) -> bool:
        """Stop the answer if it is generated here; False if not (another replica, or it ended)."""
        live = self.live.get(message_id)
        if live is None:
            return False
        live.interrupt(STOP)
        return True

    async def close(self) -> None:
        """At shutdown: end every answer, let each store how far it got, then cancel what is left."""
        for live in list(self.live.values()):
            live.interrupt(SHUTDOWN)
        for wait_s in (CLOSE_WAIT_S, 2.0):
            tasks = list(self.tasks)
            if not tasks:
                return
            _, pending = await asyncio.wait(tasks, timeout=wait_s)
            for task in pending:
                task.cancel()


# --- following a message ---------------------------------------------------------------------------------


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


HEARTBEAT = b": keep-alive\n\n"


async def follow(database: Database, generations: Generations, message: Message,
                 public: Callable[[Message], dict[str, Any]]) -> AsyncIterator[bytes]:
    """The event stream of ``message`` (already checked to be the user's)."""
    live = generations.live.get(message.id)
    if live is not None:
        snapshot, queue = live.subscribe()
        try:
            yield sse("snapshot", snapshot)
            async for chunk in _from_memory(queue):
                yield chunk
        finally:
            live.listeners.discard(queue)
    else:
        stored = await _read(database, message.id) or message
        yield sse("snapshot", {"content": stored.content, "thinking": stored.thinking or "",
                               "status": stored.status})
        if stored.status == STREAMING:
            async for chunk in _from_database(database, stored):
                yield chunk
    final = await _read(database, message.id) or message
    yield sse("done", public(final))


async def _from_memory(queue: asyncio.Queue[Delta | None]) -> AsyncIterator[bytes]:
    while True:
        try:
            delta = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
        except TimeoutError:
            yield HEARTBEAT
            continue
        if delta is END:
            return
        yield sse("delta", delta)


async def _from_database(database: Database, seen: Message) -> AsyncIterator[bytes]:
    """Poll the stored message (generated on another replica) and send what was added each time."""
    content, thinking = seen.content, seen.thinking or ""
    quiet_since = asyncio.get_running_loop().time()
    while True:
        await asyncio.sleep(POLL_S)
        current = await _read(database, seen.id)
        if current is None:
            return
        delta = {k: new[len(old):] for k, old, new in (("content", content, current.content),
                                                        ("thinking", thinking, current.thinking or ""))
                 if len(new) > len(old) and new.startswith(old)}
        if delta:
            content, thinking = current.content, current.thinking or ""
            quiet_since = asyncio.get_running_loop().time()
            yield sse("delta", delta)
        if current.status != STREAMING:
            return
        if utcnow() - current.updated_at > ABANDONED_AFTER:
            await anyio.to_thread.run_sync(fail_abandoned, database, seen.id, utcnow() - ABANDONED_AFTER)
            return
        if asyncio.get_running_loop().time() - quiet_since >= HEARTBEAT_S:
            quiet_since = asyncio.get_running_loop().time()
            yield HEARTBEAT


async def _read(database: Database, message_id: str) -> Message | None:
    try:
        return await anyio.to_thread.run_sync(read_message, database, message_id)
    except Exception:  # a database hiccup ends this follower, not the answer; a reload follows again
        log.exception("could not read message %s", message_id)
        return None
