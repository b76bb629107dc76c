"""A real ``ember serve`` (role all: engine + web UI, the bundled model) as a child process, and Debian's
Chromium driven by Playwright (its own browser download is not possible here)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tests.server_harness import TEST_DEFAULTS, free_port

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

    from ember.db import Database
    from ember.db.policies import ModelPolicy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SETUP_LINK = re.compile(r"(http://\S+/setup\?token=\S+)")


@dataclass
class EmberServe:
    home: Path
    engine_port: int
    web_port: int
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def engine_url(self) -> str:
        return f"http://127.0.0.1:{self.engine_port}"

    def start(self, timeout: float = 120) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "ember.cli.main", "serve"], env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ember serve exited: {self.log_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"ember serve did not start in time: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def setup_link(self) -> str:
        """The one-time first-admin link the web role logged at start."""
        found = SETUP_LINK.search(self.log_text())
        assert found, "no setup link in the log"
        return found.group(1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def ember_serve(tmp: Path, models_dir: Path, **env: str) -> EmberServe:
    """``ember serve`` on free loopback ports with its own EMBER_HOME; ``env`` adds settings (e.g.
    EMBER_DATABASE_URL for PostgreSQL)."""
    engine_port, web_port = free_port(), free_port()
    home = tmp / f"home-{web_port}"
    values = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{engine_port}", "EMBER_WEB_HOST": f"127.0.0.1:{web_port}",
              "EMBER_HOME": str(home), "EMBER_MODELS": str(models_dir), "EMBER_LOG_LEVEL": "info",
              **{f"EMBER_{k.upper()}": str(v) for k, v in TEST_DEFAULTS.items()}, **env}
    return EmberServe(home, engine_port, web_port, tmp / f"ember-{web_port}.log", values)


@dataclass(frozen=True)
class LoggedIn:
    name: str
    csrf_token: str


def served_database(served: EmberServe) -> Database:
    """The served process's own database (open; the caller closes it)."""
    from ember.db import Database

    return Database.open(served.env.get("EMBER_DATABASE_URL") or f"sqlite:///{served.home / 'ember.db'}")


def log_in_admin(served: EmberServe, context: BrowserContext) -> LoggedIn:
    """A new admin with a session made in the server's database, its cookie set on ``context``.

    Making an admin spends the setup link: tests of the link itself use ``fresh_served``."""
    from ember.db.sessions import create_session
    from ember.db.users import create_user
    from ember.gateway.auth import SESSION_COOKIE

    database = served_database(served)
    try:
        name = f"admin-{uuid.uuid4().hex[:6]}"
        user = create_user(database, name, "password-for-ui-tests", "admin")
        made = create_session(database, user.id, timedelta(hours=1))
    finally:
        database.close()
    context.add_cookies([{"name": SESSION_COOKIE, "value": made.token, "url": served.url}])
    return LoggedIn(name, made.user.csrf_token)


def log_in_as(served: EmberServe, context: BrowserContext, name: str, role: str = "user") -> LoggedIn:
    """A new user (any role) with a session made in the server's database, its cookie set on ``context`` (the
    login page's own tests go through the form)."""
    from ember.db.sessions import create_session
    from ember.db.users import create_user
    from ember.gateway.auth import SESSION_COOKIE

    database = served_database(served)
    try:
        user = create_user(database, name, "password-for-ui-tests", role)
        made = create_session(database, user.id, timedelta(hours=1))
    finally:
        database.close()
    context.add_cookies([{"name": SESSION_COOKIE, "value": made.token, "url": served.url}])
    return LoggedIn(name, made.user.csrf_token)


def engine_active(served: EmberServe) -> int:
    """Requests the engine is generating or has queued, from its /api/ps."""
    ps = httpx.get(served.engine_url + "/api/ps", timeout=10).json()
    return sum(int(m.get("active", 0)) + int(m.get("queued", 0)) for m in ps["models"])


def set_app_setting(served: EmberServe, key: str, value: object) -> None:
    """A run-time setting (what the admin settings page stores), written directly in the database."""
    from ember.db.tables import AppSettingRow

    database = served_database(served)
    try:
        with database.session() as session:
            session.merge(AppSettingRow(key=key, value=value))
    finally:
        database.close()


@contextmanager
def model_policy(served: EmberServe, policy: ModelPolicy) -> Iterator[None]:
    """An admin's model policy in the server's database for the length of the block."""
    from ember.db.policies import delete_policy, set_policy

    database = served_database(served)
    try:
        set_policy(database, policy)
        yield
    finally:
        delete_policy(database, policy.model)
        database.close()
