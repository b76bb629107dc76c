"""The browser suite: one real ``ember serve`` for the session, and a fresh Chromium page per test.

Skipped (not failed) where Debian's chromium is not installed; scripts/test.sh installs it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres_fixture import fresh_postgres_database
from tests.ui.harness import CHROMIUM, CHROMIUM_ARGS, EmberServe, ember_serve

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every browser test is slow: they run in CI's slow pass (``-m slow``)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)


# Which databases the browser suite runs against: scripts/test.sh sets "sqlite,postgres"; the default keeps a
# developer's run short.
DATABASES = [d.strip() for d in os.environ.get("EMBER_UI_DATABASES", "sqlite").split(",") if d.strip()]


@pytest.fixture(scope="session", params=DATABASES)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmberServe]:
    """``ember serve`` on SQLite (its default) or on a fresh database of the machine's PostgreSQL, shared by
    the tests of a session (so its setup link is spent once some test made an admin)."""
    with _serving(request.param, tmp_path_factory) as running:
        yield running


@pytest.fixture(params=DATABASES)
def fresh_served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmberServe]:
    """A server of a test's own: no admin yet, so its setup link works."""
    with _serving(request.param, tmp_path_factory) as running:
        yield running


@contextlib.contextmanager
def _serving(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmberServe]:
    tmp = tmp_path_factory.mktemp(f"ui-{kind}")
    with database_url(kind) as url:
        running = ember_serve(tmp, tmp / "models", **({"EMBER_DATABASE_URL": url} if url else {}))
        running.start()
        try:
            yield running
        finally:
            running.stop()


@contextlib.contextmanager
def database_url(kind: str) -> Iterator[str | None]:
    if kind == "sqlite":
        yield None
    elif kind == "postgres":
        with fresh_postgres_database() as url:
            yield url
    else:
        raise ValueError(f"EMBER_UI_DATABASES: unknown database {kind!r} (sqlite, postgres)")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shots() -> Path:
    """Where screenshots for the README go (docs/screenshots, committed)."""
    path = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
