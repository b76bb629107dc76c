"""The admin pages in a real browser against a real ``ember serve``: models (the bundled one listed and loaded, a
pull that cannot reach a registry says so), a locked option set on the policies page, a key created and revoked,
the audit log filtered; each page without sideways scrolling at phone width. Screenshots for the README."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

from playwright.sync_api import Page, expect

from ember.db.users import create_user
from tests.ui.harness import EmberServe, LoggedIn, log_in_admin, served_database

MODEL = "smollm2:135m"
PAGES = ["/admin/users", "/admin/models", "/admin/policies", "/admin/keys", "/admin/audit", "/admin/settings"]


def _fits_a_phone(page: Page, url: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    for path in PAGES:
        page.goto(url + path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 391, f"{path} scrolls sideways at phone width ({width}px)"
    page.set_viewport_size({"width": 1280, "height": 800})


def _models(page: Page, served: EmberServe, admin: LoggedIn, shots: Path) -> None:
    # Load the model through the gateway as this admin, so the loaded table has a row to show.
    loaded = page.request.post(served.url + "/api/generate", headers={"X-CSRF-Token": admin.csrf_token},
                               data={"model": MODEL, "prompt": "Hi", "stream": False, "keep_alive": "10m",
                                     "options": {"num_predict": 1}})
    assert loaded.ok, loaded.text()
    page.goto(served.url + "/admin/models")
    expect(page.locator(f'#installed tr[data-model="{MODEL}"]')).to_be_visible()
    expect(page.locator(f'#loaded tr[data-model="{MODEL}"]')).to_be_visible()
    page.screenshot(path=str(shots / "admin-models.png"), full_page=True)

    # Delete a copy (the bundled model stays for the other tests): confirmed, then gone from the table.
    copy = f"admin-copy-{uuid.uuid4().hex[:6]}:latest"
    copied = page.request.post(served.url + "/api/copy", headers={"X-CSRF-Token": admin.csrf_token},
                               data={"source": MODEL, "destination": copy})
    assert copied.ok, copied.text()
    page.reload()
    page.get_by_role("button", name=f"Delete {copy}").click()
    expect(page.locator(f'#installed tr[data-model="{copy}"]')).to_have_count(0)
    expect(page.locator("#admin-error")).to_be_hidden()
    assert copy not in [m["name"] for m in page.request.get(served.url + "/api/tags").json()["models"]]

    page.get_by_label("Model name").fill("library-ember-test/not-here:1b")
    page.get_by_role("button", name="Pull").click()
    expect(page.locator("#admin-error")).to_contain_text("Pull of library-ember-test/not-here:1b failed",
                                                         timeout=60_000)
    expect(page.get_by_role("button", name="Pull")).to_be_enabled()


def _policies(page: Page, url: str) -> None:
    page.goto(url + "/admin/policies")
    page.get_by_label("Model", exact=True).fill(MODEL)
    page.get_by_role("button", name="Add option").click()
    page.get_by_label("Option", exact=True).select_option("temperature")
    page.get_by_label("Value").fill("0.3")
    page.get_by_label("Locked", exact=True).check()
    page.get_by_role("button", name="Save policy").click()
    row = page.locator(f'#policies tr[data-model="{MODEL}"]')
    expect(row).to_contain_text("temperature=0.3")
    expect(row.locator("td").nth(3)).to_have_text("temperature")
    locked = page.request.get(url + "/ui/api/models").json()["models"]
    assert next(m for m in locked if m["name"] == MODEL)["locked"] == ["temperature"]
    page.get_by_role("button", name=f"Delete the policy of {MODEL}").click()  # leave the model as other tests need it
    expect(row).to_have_count(0)


def _keys(page: Page, url: str) -> None:
    page.goto(url + "/admin/keys")
    name = f"ui-key-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Key name").fill(name)
    page.get_by_label("Requests per minute").fill("30")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#created-secret")
    expect(secret).to_have_text(re.compile(r"^ember_sk_\S{43}$"))
    row = page.locator(f'tr[data-key="{name}"]')
    expect(row).to_contain_text("active")
    assert page.request.get(url + "/api/tags", headers={"Authorization": f"Bearer {secret.text_content()}"}).ok
    page.get_by_role("button", name=f"Revoke {name}").click()
    expect(row).to_contain_text("revoked")
    page.reload()
    expect(page.locator("#created-secret")).to_be_hidden()  # shown once, never again


def _audit(page: Page, url: str, admin: LoggedIn, shots: Path) -> None:
    # The audit log is written in batches: wait until the failed pull is in it.
    deadline = time.monotonic() + 30
    while True:
        events = page.request.get(url + f"/ui/api/admin/audit?user={admin.name}").json()["events"]
        pulls = [e for e in events if e["route"] == "/api/pull"]
        if pulls or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert pulls, events
    status = str(pulls[0]["status"])
    page.goto(url + "/admin/audit")
    page.get_by_label("User").fill(admin.name)
    page.get_by_label("Status").fill(status)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(f"status={status}"))
    rows = page.locator("#audit tbody tr")
    expect(rows.filter(has_text="/api/pull")).to_have_count(len(pulls))
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.status)")) == {status}
    page.get_by_label("Status").fill("")
    page.get_by_label("Route").fill("/api/pull")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile("route=%2Fapi%2Fpull"))
    expect(rows).to_have_count(len(pulls))
    # One request a page: Older goes back in time, Newer returns. The range ends at the pull: the requests that
    # started before it (the pages visited since) have long finished and are written.
    page.get_by_label("Route").fill("")
    page.get_by_label("Until").fill(str(pulls[-1]["time"]))
    page.get_by_label("Limit").fill("1")
    page.get_by_role("button", name="Filter").click()
    expect(rows.first).not_to_contain_text("/api/pull")  # the new page (until is exclusive), not the last view
    expect(rows).to_have_count(1)
    expect(page.get_by_role("button", name="Newer")).to_be_disabled()
    newest = rows.first.text_content() or ""
    page.get_by_role("button", name="Older").click()
    expect(page.locator("#count")).to_contain_text("(2–2)")
    page.get_by_role("button", name="Newer").click()
    expect(page.locator("#count")).to_contain_text("(1–1)")
    expect(rows.first).to_have_text(newest)
    page.get_by_label("Until").fill("")
    page.get_by_label("Limit").fill("5")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("button", name="Older")).to_be_enabled()
    page.screenshot(path=str(shots / "admin-audit.png"), full_page=True)



def _users(served: EmberServe) -> None:
    """Someone waiting for approval and a regular user, so the users page shows what it is for."""
    database = served_database(served)
    try:
        for role in ("user", "pending"):
            create_user(database, f"{role}-{uuid.uuid4().hex[:6]}", "password-for-ui-tests", role)
    finally:
        database.close()


def test_admin_pages(served: EmberServe, page: Page, shots: Path) -> None:
    admin = log_in_admin(served, page.context)
    page.on("dialog", lambda dialog: dialog.accept())
    _models(page, served, admin, shots)
    _policies(page, served.url)
    _keys(page, served.url)
    _audit(page, served.url, admin, shots)
    _users(served)
    page.goto(served.url + "/admin/users")
    expect(page.locator(f'tr[data-user="{admin.name}"]')).to_be_visible()
    page.screenshot(path=str(shots / "admin-users.png"), full_page=True)
    _fits_a_phone(page, served.url)
