"""Server-side generation of a chat answer: a background task that streams /api/chat through the gateway's
pipeline as the user, publishes each piece to followers, and stores the growing text.

The text is stored every FLUSH_S and at the end, so a reloaded page (or another replica) finds it; each
store also reads ``stop_requested``, which is how a Stop sent to another replica reaches this one. A Stop sent
here cancels the task once the answer flows, and closing the relay closes the engine connection: the engine
stops generating. (Before it flows the task is not cancelled, so the pipeline finishes the request as usual.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread

from ember.db.chats import DONE, FAILED, STOPPED, finish_message, save_progress, set_title_if
from ember.db.sessions import WebUser
from ember.web.inprocess import body_chunks, chat_as, error_text, read_all
from ember.web.services import WebUI
from ember.web.streams import STOP, Live

log = logging.getLogger(__name__)

FLUSH_S = 0.5
TOUCH_S = 5.0
TITLE_TIMEOUT_S = 60.0
TITLE_LENGTH = 60
STAT_KEYS = ("done_reason", "eval_count", "prompt_eval_count", "total_duration", "load_duration",
             "prompt_eval_duration", "eval_duration")
T = TypeVar("T")


@dataclass(frozen=True)
class Turn:
    """One answer to generate: who asks, the /api/chat body, and where the answer is stored."""

    user: WebUser
    client: str | None  # the browser's address, for the audit log
    chat_id: str
    message_id: str
    body: dict[str, Any]
    title_from: str | None = None  # on a chat's first turn: the title made from the first message


@dataclass
class Outcome:
    status: str = FAILED
    error: str | None = None
    stats: dict[str, Any] | None = None


def start(ui: WebUI, turn: Turn) -> Live:
    return ui.generations.start(turn.message_id, lambda live: generate(ui, turn, live))


async def generate(ui: WebUI, turn: Turn, live: Live) -> None:
    keeper = asyncio.create_task(_keep_stored(ui, turn, live))
    try:
        outcome = await _answer(ui, turn, live)
    except asyncio.CancelledError:  # interrupted while the answer flowed (Stop, shutdown), or killed at shutdown
        outcome = _interrupted(live)
    except Exception as exc:
        log.exception("chat answer %s failed", turn.message_id)
        outcome = Outcome(FAILED, str(exc) or type(exc).__name__)
    finally:
        keeper.cancel()
    await _unstoppable(anyio.to_thread.run_sync(lambda: finish_message(
        ui.database, turn.message_id, status=outcome.status, content=live.content, thinking=live.thinking or None,
        error=outcome.error, stats=outcome.stats)))
    live.ended()
    if outcome.status == DONE and turn.title_from is not None and ui.model_titles:
        ui.generations.spawn(make_title(ui, turn))


def _interrupted(live: Live) -> Outcome:
    if live.ending == STOP:
        return Outcome(STOPPED)
    return Outcome(FAILED, "the server stopped during the answer")


async def _answer(ui: WebUI, turn: Turn, live: Live) -> Outcome:
    response = await chat_as(ui.gateway, turn.user, turn.body, turn.client)
    if response.status_code >= 400:
        return Outcome(FAILED, error_text(await read_all(response), response.status_code))
    outcome: Outcome | None = None
    pending = b""
    async with aclosing(body_chunks(response)) as chunks:  # closing it closes the engine connection
        live.relaying = True
        async for chunk in chunks:  # read to the end even after the last line, so the request ends cleanly
            if live.ending:  # stopped while the request was set up: end it now that the relay has begun
                return _interrupted(live)
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                outcome = outcome or _take_line(line, live)
    outcome = outcome or (_take_line(pending, live) if pending.strip() else None)
    return outcome or Outcome(FAILED, "the engine's answer ended before it was done")


async def _keep_stored(ui: WebUI, turn: Turn, live: Live) -> None:
    """Store the text every FLUSH_S while it grows (and every TOUCH_S regardless, which tells followers on
    other replicas that this one is alive), and pick up a Stop sent to another replica."""
    stored, touched = ("", ""), time.monotonic()
    while True:
        await asyncio.sleep(FLUSH_S)
        now = (live.content, live.thinking)
        if now == stored and time.monotonic() - touched < TOUCH_S:
            continue
        stored, touched = now, time.monotonic()
        if await _store_progress(ui, turn, now):
            live.interrupt(STOP)
            return


def _take_line(line: bytes, live: Live) -> Outcome | None:
    """Add one NDJSON chunk of /api/chat to the answer; the outcome once it is the last one."""
    if not line.strip():
        return None
    try:
        chunk = json.loads(line)
    except ValueError:
        return Outcome(FAILED, "the engine sent a line that is not JSON")
    if not isinstance(chunk, dict):
        return Outcome(FAILED, "the engine sent an unexpected chunk")
    if chunk.get("error"):
        return Outcome(FAILED, str(chunk["error"]))
    message = chunk.get("message") or {}
    live.add(str(message.get("content") or ""), str(message.get("thinking") or ""))
    if chunk.get("done"):
        return Outcome(DONE, stats={k: chunk[k] for k in STAT_KEYS if k in chunk})
    return None


async def _store_progress(ui: WebUI, turn: Turn, text: tuple[str, str]) -> bool:
    content, thinking = text
    return await anyio.to_thread.run_sync(lambda: save_progress(ui.database, turn.message_id, content,
                                                                thinking or None))


async def _unstoppable(work: Awaitable[T]) -> T:
    """Finish ``work`` (storing how an answer ended) even if this task is cancelled again meanwhile."""
    future = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                return future.result()


# --- titles ----------------------------------------------------------------------------------------------


def title_from_message(text: str) -> str:
    """A chat's first title: its first message, on one line, cut at a word near TITLE_LENGTH characters."""
    flat = " ".join(text.split())
    if len(flat) <= TITLE_LENGTH:
        return flat
    cut = flat[:TITLE_LENGTH].rsplit(" ", 1)[0] or flat[:TITLE_LENGTH]
    return cut.rstrip(" ,.;:") + "…"


def clean_title(text: str) -> str:
    """What a model wrote as a title, without quotes, markdown or a "Title:" prefix; "" if nothing usable."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    title = re.sub(r"^(title\s*:\s*)", "", lines[0].strip(), flags=re.IGNORECASE)
    title = " ".join(title.strip(" \t\"'`*#_.").split())
    return title[:TITLE_LENGTH].strip()


TITLE_INSTRUCTION = "Write a short title (at most six words) for a conversation that begins with this message. " \
                    "Answer with the title only."


async def make_title(ui: WebUI, turn: Turn) -> None:
    """Ask the model for a title in the background; keep the first-message title if anything goes wrong."""
    first = next((m["content"] for m in turn.body.get("messages", []) if m.get("role") == "user"), "")
    body = {"model": turn.body["model"], "stream": False, "options": {"num_predict": 16, "temperature": 0.2},
            "messages": [{"role": "system", "content": TITLE_INSTRUCTION},
                         {"role": "user", "content": str(first)[:2000]}]}
    try:
        async with asyncio.timeout(TITLE_TIMEOUT_S):
            response = await chat_as(ui.gateway, turn.user, body, turn.client)
            raw = await read_all(response)
        if response.status_code != 200:
            return
        title = clean_title(str(json.loads(raw).get("message", {}).get("content", "")))
        if title and turn.title_from is not None:
            await anyio.to_thread.run_sync(lambda: set_title_if(ui.database, turn.chat_id, expected=str(
                turn.title_from), title=title))
    except (TimeoutError, ValueError, AttributeError) as exc:
        log.info("no model-made title for chat %s: %s", turn.chat_id, exc)
