"""The browser suite's base: a real ``ember serve`` with the bundled model, reached from real Chromium."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.ui.harness import EmberServe


def test_a_fresh_server_logs_a_setup_link_and_sends_browsers_to_the_login_page(fresh_served: EmberServe,
                                                                               page: Page) -> None:
    assert "/setup?token=" in fresh_served.setup_link()
    page.goto(fresh_served.url + "/")
    assert page.url.endswith("/login")
