"""Account and admin pages in a real browser on a server of their own: they fit a 360 px phone, and the admin
changes the sign-up mode and the embedding model (chosen from the engine's models) on the Settings page."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.ui.harness import EmberServe, ember_serve

PASSWORD = "password-for-ui-tests"
PHONE = {"width": 360, "height": 740}


@pytest.fixture(scope="module")
def own_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmberServe]:
    """A server of its own: making an admin here must not spend the shared server's setup link, which
    test_accounts.py goes through."""
    tmp = tmp_path_factory.mktemp("phone")
    running = ember_serve(tmp, tmp / "models")
    running.start()
    yield running
    running.stop()


def make_admin(served: EmberServe) -> str:
    """An admin made on the host, as `ember users create --admin` does."""
    name = f"phone-admin-{uuid.uuid4().hex[:6]}"
    subprocess.run([sys.executable, "-m", "ember.cli.main", "users", "create", name, "--admin", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, env=served.env, check=True, capture_output=True, timeout=60)
    return name


def fits_the_width(page: Page) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url} is {overflow}px wider than the phone"


def test_account_and_admin_pages_fit_a_phone(own_server: EmberServe, chromium: Browser) -> None:
    served = own_server
    admin = make_admin(served)
    context = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        for path in ("/login", "/signup"):
            page.goto(served.url + path)
            expect(page.get_by_label("Username")).to_be_visible()
            fits_the_width(page)
        page.goto(served.url + "/login")
        page.get_by_label("Username").fill(admin)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(served.url + "/")
        for path in ("/admin/users", "/admin/settings", "/account"):
            page.goto(served.url + path)
            fits_the_width(page)
        page.goto(served.url + "/admin/users")
        row = page.locator(f'tr[data-user="{admin}"]')
        expect(row).to_be_visible()
        box = row.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    finally:
        context.close()


def test_the_admin_closes_sign_up_and_picks_the_embedding_model_in_the_browser(own_server: EmberServe,
                                                                               chromium: Browser) -> None:
    served = own_server
    admin = make_admin(served)
    context = chromium.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        page.goto(served.url + "/login")
        page.get_by_label("Username").fill(admin)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(served.url + "/")
        page.goto(served.url + "/admin/settings")
        model = page.get_by_label("Embedding model for documents")
        # The choices come from the engine's /api/tags, fetched by the page with the admin's session.
        expect(model.locator("option", has_text="smollm2:135m")).to_have_count(1)
        model.select_option("smollm2:135m")
        page.get_by_label("Sign-up").select_option("closed")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_have_text("Saved.")
        page.reload()
        expect(page.get_by_label("Sign-up")).to_have_value("closed")
        expect(model).to_have_value("smollm2:135m")

        visitor = chromium.new_context().new_page()
        response = visitor.goto(served.url + "/signup")
        assert response is not None and response.status == 403
        expect(visitor.get_by_text("closed", exact=False).first).to_be_visible()
        visitor.context.close()
    finally:
        context.close()
