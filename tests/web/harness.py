"""The web role with its UI in the test process, and browser-like HTTP clients logged in as a user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from ember.config import Settings
from ember.db import Database
from ember.db.sessions import create_session
from ember.db.users import get_user
from ember.gateway.auth import CSRF_HEADER, SESSION_COOKIE
from tests.gateway.harness import ENGINE_KEY, RunningWeb, serve_in_thread
from tests.server_harness import free_port


def start_ui(database: Database, engines: list[str], **overrides: Any) -> RunningWeb:
    from ember.web.app import create_app

    port = free_port()
    values: dict[str, Any] = {"engine_key": ENGINE_KEY, "request_timeout": 120.0, **overrides}
    settings = Settings.from_env({}, web_host=f"127.0.0.1:{port}", engines=tuple(engines), **values)
    app = create_app(settings, database=database, check_interval=0.5, cooldown=2.0)
    server, thread = serve_in_thread(app, port)
    return RunningWeb(settings, app, server, thread)


@dataclass
class Browser:
    """An httpx client that acts like the UI's scripts: the session cookie, and the CSRF token on writes."""

    client: httpx.Client
    csrf_token: str
    user_name: str

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(url, **kwargs)

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {CSRF_HEADER: self.csrf_token, **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.send("POST", url, **kwargs)

    def close(self) -> None:
        self.client.close()


def logged_in(web: RunningWeb, database: Database, user_name: str) -> Browser:
    """A browser with a session for ``user_name`` made directly in the database (the login page's own tests
    go through the form)."""
    user = get_user(database, user_name)
    assert user is not None, user_name
    made = create_session(database, user.id, timedelta(hours=1))
    client = httpx.Client(base_url=web.url, timeout=120, cookies={SESSION_COOKIE: made.token})
    return Browser(client, made.user.csrf_token, user_name)
