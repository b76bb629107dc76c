"""Shared parts of the web UI suite: the gateway suite's real engine, the web role with its UI in front of it
on SQLite, users, and logged-in browser clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from ember.db import Database
from tests.gateway.conftest import accounts, keyed_engine, redis_prefix, web_db  # noqa: F401  (shared fixtures)
from tests.gateway.harness import Accounts, RunningWeb
from tests.server_harness import RunningServer
from tests.web.harness import Browser, logged_in, start_ui

if TYPE_CHECKING:
    from ember.web.services import WebUI


@pytest.fixture(scope="session")
def ui(keyed_engine: RunningServer, web_db: Database) -> Iterator[RunningWeb]:  # noqa: F811
    running = start_ui(web_db, [keyed_engine.url])
    yield running
    running.stop()


@pytest.fixture
def browser_for(ui: RunningWeb, web_db: Database,  # noqa: F811
                accounts: Accounts) -> Iterator[Callable[[str], Browser]]:  # noqa: F811
    """Make logged-in browsers: ``browser_for("user")`` or ``browser_for("admin")`` gives a new user's."""
    made: list[Browser] = []

    def make(role: str = "user") -> Browser:
        browser = logged_in(ui, web_db, accounts.user(role))
        made.append(browser)
        return browser

    yield make
    for browser in made:
        browser.close()


@pytest.fixture(autouse=True)
def fresh_login_limits(request: pytest.FixtureRequest) -> None:
    """Each test that uses the shared web role starts with no failed logins counted: every test logs in from
    127.0.0.1, and the per-address limit would otherwise carry one test's failures into the next."""
    if "ui" in request.fixturenames:
        from ember.web.login_limits import LoginLimits

        running: RunningWeb = request.getfixturevalue("ui")
        running.app.state.web.login_limits = LoginLimits()


@pytest.fixture
def no_model_titles(ui: RunningWeb) -> Iterator[WebUI]:
    """Model-made titles are one more engine request per chat: only the tests about them ask for them."""
    web_ui: WebUI = ui.app.state.web
    web_ui.model_titles = False
    yield web_ui
    web_ui.model_titles = True
