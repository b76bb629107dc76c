"""Accounts in a real browser against a real ``ember serve``: the first admin through the setup link, and a
second user who signs up, waits for approval, is approved by the admin, and is refused the admin pages."""

from __future__ import annotations

import uuid

from playwright.sync_api import Browser, Page, expect

from tests.ui.harness import EmberServe

PASSWORD = "password-for-ui-tests"


def log_in(page: Page, url: str, name: str, password: str = PASSWORD) -> None:
    page.goto(url + "/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_first_admin_then_a_second_user_is_approved_and_kept_out_of_admin(fresh_served: EmberServe, page: Page,
                                                                          chromium: Browser, shots: object) -> None:
    served = fresh_served
    admin = f"admin-{uuid.uuid4().hex[:6]}"
    page.goto(served.setup_link())
    page.get_by_label("Username").fill(admin)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create admin").click()
    expect(page).to_have_url(served.url + "/")

    # A second user, in a browser of their own: sign-up waits for approval (the default mode).
    other = chromium.new_context().new_page()
    user = f"user-{uuid.uuid4().hex[:6]}"
    other.goto(served.url + "/signup")
    other.get_by_label("Username").fill(user)
    other.get_by_label("Password", exact=True).fill(PASSWORD)
    other.get_by_label("Repeat password").fill(PASSWORD)
    other.get_by_role("button", name="Create account").click()
    expect(other.get_by_role("status")).to_contain_text("admin must approve")
    log_in(other, served.url, user)
    expect(other.get_by_role("status")).to_contain_text("waiting for an admin")

    page.goto(served.url + "/admin/users")
    page.get_by_role("button", name=f"Approve {user}").click()
    expect(page.locator(f'tr[data-user="{user}"]')).to_contain_text("active")

    log_in(other, served.url, user)
    expect(other).to_have_url(served.url + "/")
    response = other.goto(served.url + "/admin/users")
    assert response is not None and response.status == 403
    assert other.request.get(served.url + "/ui/api/admin/users").status == 403
    other.context.close()
