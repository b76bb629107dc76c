"""The API process's handle on one runner child process.

The socket to the child is read and written by the event loop itself (an asyncio protocol speaking the
framing of ``multiprocessing.connection``, which the child uses): no threads, no per-message wake-ups, and
writes are buffered, so a wedged runner can never block the loop. When the child dies, or stays silent
while it owes answers for longer than the stall timeout, every waiting request fails with RunnerCrashed
and the handle is dead; the scheduler then loads a fresh runner for the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from ember.engine.messages import (
    Cancel,
    Command,
    Done,
    Embed,
    Events,
    Exit,
    Failed,
    FailureKind,
    Generate,
    LoadError,
    Ready,
    Reply,
    RequestEvent,
    Result,
    RunnerInfo,
    RunnerSpec,
    Token,
    Tokenize,
)
from ember.errors import BadRequest, LoadFailed, RunnerCrashed

log = logging.getLogger(__name__)

_ids = itertools.count(1)


@dataclass(frozen=True)
class _DeadlinePassed:
    """Put in a request's inbox by a timer when its deadline passes (never sent over the channel)."""


_Inbox = asyncio.Queue[RequestEvent | Result | _DeadlinePassed]


class RunnerHandle:
    """Implements the scheduler's ``Runner`` protocol with a real child process."""

    def __init__(self, spec: RunnerSpec, *, stall_timeout: float) -> None:
        self.spec = spec
        self.stall_timeout = stall_timeout
        self.info: RunnerInfo | None = None
        self.dead_reason: str | None = None
        self._loop = asyncio.get_running_loop()
        self._queues: dict[int, _Inbox] = {}
        self._last_heard = time.monotonic()
        self._ready: asyncio.Future[Ready | LoadError] = self._loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._unsent: list[Command] = []
        sock, self.process = _spawn(spec)
        self._connecting = self._loop.create_task(self._connect(sock))
        self._watchdog = self._loop.create_task(self._watch())

    async def _connect(self, sock: socket.socket) -> None:
        transport, _ = await self._loop.connect_accepted_socket(
            lambda: _Channel(self._dispatch, self._on_exit), sock)
        self._transport = transport  # uvloop's transports are not asyncio.Transport subclasses
        for msg in self._unsent:
            self._send(msg)
        self._unsent.clear()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.dead_reason is None

    # -- lifecycle -----------------------------------------------------------------------------------

    async def wait_ready(self, timeout: float) -> RunnerInfo:
        try:
            msg = await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        except TimeoutError:
            self.kill("load timed out")
            raise LoadFailed(f"timed out loading model after {timeout:g}s") from None
        if isinstance(msg, LoadError):
            self.kill("load failed")
            raise LoadFailed(f"failed to load model: {msg.message}")
        self.info = msg.info
        return msg.info

    def kill(self, reason: str) -> None:
        if self.dead_reason is None:
            self.dead_reason = reason
        if self.process.poll() is None:
            self.process.kill()
        if self._transport is not None:
            self._transport.abort()
        self._fail_all()

    async def close(self) -> None:
        """Ask the runner to exit, then make sure it has."""
        if self.alive:
            self._send(Exit())
        self.dead_reason = self.dead_reason or "unloaded"
        self._watchdog.cancel()
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.process.wait, 5)
        self.kill("unloaded")

    # -- requests ------------------------------------------------------------------------------------

    async def generate(self, tokens: list[int], options: dict[str, Any], stop: tuple[str, ...], num_predict: int,
                       num_ctx: int, deadline: float, *, top_logprobs: int | None = None,
                       keep: int | None = None
                       ) -> AsyncGenerator[Token | Done, None]:
        """Yields Token events and finally one Done; cancels the runner's work if abandoned.

        ``deadline`` (event-loop time) arrives as a message from a timer, so waiting for tokens costs no
        per-token timeout bookkeeping; it raises TimeoutError, which the caller turns into its own error."""
        rid, inbox = self._open()
        finished = False
        timer = self._loop.call_at(deadline, inbox.put_nowait, _DeadlinePassed())
        try:
            self._send(Generate(rid, tokens, options, stop, num_predict, num_ctx, top_logprobs, keep))
            while True:
                msg = await inbox.get()
                if isinstance(msg, Token):
                    yield msg
                elif isinstance(msg, Done):
                    finished = True
                    yield msg
                    return
                elif isinstance(msg, _DeadlinePassed):
                    raise TimeoutError
                else:
                    finished = True
                    _raise(msg)
        finally:
            timer.cancel()
            self._queues.pop(rid, None)
            if not finished and self.alive:
                self._send(Cancel(rid))

    async def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        result: list[int] = await self._call(lambda rid: Tokenize(rid, text, add_special))
        return result

    async def embed(self, texts: list[str], truncate: bool, num_ctx: int) -> list[tuple[list[float], int]]:
        result: list[tuple[list[float], int]] = await self._call(lambda rid: Embed(rid, texts, truncate, num_ctx))
        return result

    async def _call(self, make: Callable[[int], Command]) -> Any:
        rid, inbox = self._open()
        answered = False
        try:
            self._send(make(rid))
            msg = await inbox.get()
            answered = True
            if isinstance(msg, Result):
                return msg.value
            _raise(msg)
        finally:
            self._queues.pop(rid, None)
            if not answered and self.alive:
                self._send(Cancel(rid))  # an abandoned embedding batch stops at its next input

    def _open(self) -> tuple[int, _Inbox]:
        if not self.alive:
            raise RunnerCrashed(f"model runner is not running ({self.dead_reason})")
        rid = next(_ids)
        inbox: _Inbox = asyncio.Queue()
        if not self._queues:
            self._last_heard = time.monotonic()  # silence while idle is not a stall
        self._queues[rid] = inbox
        return rid, inbox

    # -- channel and dispatch ------------------------------------------------------------------------

    def _send(self, msg: Command) -> None:
        if self._transport is None:
            self._unsent.append(msg)
        elif not self._transport.is_closing():
            self._transport.write(_frame(msg))

    def _dispatch(self, msg: Reply) -> None:
        self._last_heard = time.monotonic()
        if isinstance(msg, Events):
            for event in msg.events:
                self._deliver(event)
        elif isinstance(msg, Ready | LoadError):
            if not self._ready.done():
                self._ready.set_result(msg)
        else:
            self._deliver(msg)

    def _deliver(self, msg: RequestEvent | Result) -> None:
        inbox = self._queues.get(msg.rid)
        if inbox is not None:
            inbox.put_nowait(msg)

    def _on_exit(self) -> None:
        code = self.process.poll()
        detail = f" (exit code {code})" if code is not None else ""
        reason = self.dead_reason or f"model runner process exited unexpectedly{detail}"
        if self.dead_reason is None:
            log.error("runner %s for %s died%s with %d requests in flight (runner ids %s); they fail, the next "
                      "request loads a fresh runner", self.pid, self.spec.name, detail, len(self._queues),
                      sorted(self._queues) or "none")
        if not self._ready.done():
            self._ready.set_result(LoadError(reason))
        self.kill(reason)

    def _fail_all(self) -> None:
        reason = self.dead_reason or "model runner stopped"
        for rid, inbox in self._queues.items():
            inbox.put_nowait(Failed(rid, reason, FailureKind.CRASHED))
        self._queues.clear()

    async def _watch(self) -> None:
        while self.alive:
            await asyncio.sleep(min(1.0, self.stall_timeout / 4))
            if self._queues and time.monotonic() - self._last_heard > self.stall_timeout:
                log.error("runner %s silent for %.0fs while busy; killing it", self.pid, self.stall_timeout)
                self.kill(f"model runner stopped responding for {self.stall_timeout:g}s and was restarted")


def _raise(msg: RequestEvent | Result | _DeadlinePassed) -> NoReturn:
    """Turn a runner's failure into the error the request raises."""
    if not isinstance(msg, Failed):
        raise RunnerCrashed(f"model runner sent an unexpected message: {type(msg).__name__}")
    if msg.kind is FailureKind.CRASHED:
        raise RunnerCrashed(msg.message)
    if msg.kind is FailureKind.BAD_REQUEST:
        raise BadRequest(msg.message)
    raise RunnerCrashed(f"model runner error: {msg.message}")


def _spawn(spec: RunnerSpec) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """Start ``python -m ember.engine.runner_main`` with one end of a socket pair as its channel.

    A plain subprocess (not multiprocessing) so the child never re-imports the parent's __main__.
    """
    parent_sock, child_sock = socket.socketpair()
    fd = child_sock.fileno()
    cmd = [sys.executable, "-m", "ember.engine.runner_main", str(fd), spec.to_json()]
    process = subprocess.Popen(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL, env=os.environ.copy())
    child_sock.close()
    return parent_sock, process


def _frame(msg: Command) -> bytes:
    """One message in multiprocessing.connection's framing: a signed 4-byte length (or -1 and 8 bytes)."""
    payload = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    if len(payload) > 0x7FFFFFFF:
        return struct.pack("!i", -1) + struct.pack("!Q", len(payload)) + payload
    return struct.pack("!i", len(payload)) + payload


class _Channel(asyncio.Protocol):
    """Reads framed, pickled messages from the runner and hands each to ``on_message``."""

    def __init__(self, on_message: Callable[[Reply], None], on_lost: Callable[[], None]) -> None:
        self._buffer = bytearray()
        self._on_message = on_message
        self._on_lost = on_lost

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            frame = _next_frame(self._buffer)
            if frame is None:
                return
            self._on_message(pickle.loads(frame))

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost()


def _next_frame(buffer: bytearray) -> bytes | None:
    if len(buffer) < 4:
        return None
    (size,) = struct.unpack_from("!i", buffer)
    header = 4
    if size == -1:
        if len(buffer) < 12:
            return None
        (size,) = struct.unpack_from("!Q", buffer, 4)
        header = 12
    if len(buffer) < header + size:
        return None
    frame = bytes(buffer[header:header + size])
    del buffer[:header + size]
    return frame
