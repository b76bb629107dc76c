"""Helpers of the chat API tests: chats with small answers, Server-Sent Events read as a browser does."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import BUNDLED
from tests.gateway.harness import ENGINE_KEY
from tests.server_harness import RunningServer
from tests.web.harness import Browser


@dataclass
class Event:
    name: str
    data: Any


@dataclass
class Followed:
    events: list[Event] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The snapshot's content and every delta's: what a page following the stream shows."""
        parts = [e.data.get("content", "") for e in self.events if e.name in ("snapshot", "delta")]
        return "".join(parts)

    @property
    def done(self) -> dict[str, Any]:
        assert self.events and self.events[-1].name == "done", [e.name for e in self.events]
        found: dict[str, Any] = self.events[-1].data
        return found


def new_chat(browser: Browser, num_predict: int = 8, **fields: Any) -> dict[str, Any]:
    body = {"model": BUNDLED, "options": {"num_predict": num_predict, "temperature": 0.7, "seed": 3}, **fields}
    response = browser.post("/ui/api/chats", json=body)
    assert response.status_code == 201, response.text
    chat: dict[str, Any] = response.json()
    return chat


def send(browser: Browser, chat_id: str, content: str, **fields: Any) -> dict[str, Any]:
    response = browser.post(f"/ui/api/chats/{chat_id}/messages", json={"content": content, **fields})
    assert response.status_code == 201, response.text
    turn: dict[str, Any] = response.json()
    return turn


def events(response: httpx.Response) -> Iterator[Event]:
    name, data = "message", []
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if data:
                yield Event(name, json.loads("\n".join(data)))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def follow(browser: Browser, message_id: str, until: Callable[[Followed], bool] | None = None) -> Followed:
    """Read the message's stream to its end (or until ``until`` says so: then the client leaves)."""
    followed = Followed()
    with browser.client.stream("GET", f"/ui/api/messages/{message_id}/stream") as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in events(response):
            followed.events.append(event)
            if event.name == "done" or (until is not None and until(followed)):
                break
    return followed


def stored(browser: Browser, chat_id: str) -> dict[str, Any]:
    response = browser.get(f"/ui/api/chats/{chat_id}")
    assert response.status_code == 200, response.text
    chat: dict[str, Any] = response.json()
    return chat


def stored_message(browser: Browser, chat_id: str, message_id: str) -> dict[str, Any]:
    return next(m for m in stored(browser, chat_id)["messages"] if m["id"] == message_id)


def wait_status(browser: Browser, chat_id: str, message_id: str, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        message = stored_message(browser, chat_id, message_id)
        if message["status"] != "streaming":
            return message
        assert time.monotonic() < deadline, "the answer did not finish"
        time.sleep(0.1)


def active_on_engine(engine: RunningServer) -> int:
    ps = httpx.get(engine.url + "/api/ps", headers={"Authorization": f"Bearer {ENGINE_KEY}"}).json()
    return sum(int(m.get("active", 0)) + int(m.get("queued", 0)) for m in ps["models"])


def wait_engine_idle(engine: RunningServer, within: float) -> float:
    started = time.monotonic()
    while active_on_engine(engine):
        assert time.monotonic() - started < within, "the engine is still generating"
        time.sleep(0.05)
    return time.monotonic() - started
