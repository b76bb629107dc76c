"""Security of the account and admin routes beyond the flows in test_accounts.py: the CSRF token on every
state-changing account route (forms and JSON), a disabled user locked out of everything, role changes acting
on open sessions, the Secure cookie flag from EMBER_COOKIE_SECURE, and the admin routes' validation."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from ember.db import Database
from ember.db.app_settings import get_setting, set_setting
from ember.db.users import authenticate_user, create_user, get_user
from ember.gateway.auth import CSRF_HEADER, SESSION_COOKIE
from tests.gateway.harness import Accounts, RunningWeb
from tests.server_harness import RunningServer
from tests.web.harness import Browser, start_ui

PASSWORD = "password-for-tests"  # what tests.gateway.harness.Accounts gives every user


def form_token(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="form_token" value="([^"]+)"', client.get(path).text)
    assert found, path
    return found.group(1)


def log_in(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/login", data={"form_token": form_token(client, "/login"), "username": name,
                                       "password": password})


@pytest.fixture
def restore_settings(web_db: Database) -> Iterator[None]:
    before = {key: get_setting(web_db, key) for key in ("signup", "embed_model")}
    yield
    for key, value in before.items():
        set_setting(web_db, key, value)


def admin_writes(target: str) -> list[tuple[str, str, dict[str, object]]]:
    """Every state-changing admin JSON route of the accounts slice, aimed at user ``target``."""
    return [
        ("PATCH", f"/ui/api/admin/users/{target}", {"role": "user"}),
        ("PATCH", f"/ui/api/admin/users/{target}", {"disabled": True}),
        ("POST", f"/ui/api/admin/users/{target}/password", {"password": "taken-over-1"}),
        ("PUT", "/ui/api/admin/settings", {"signup": "open"}),
    ]


# -- CSRF on every state-changing route ---------------------------------------------------------------------


def test_every_admin_write_needs_the_csrf_token(browser_for: Callable[[str], Browser], accounts: Accounts,
                                               web_db: Database, ui: RunningWeb) -> None:
    admin = browser_for("admin")
    target = accounts.user("pending")
    before = get_setting(web_db, "signup")
    for method, path, body in admin_writes(target):
        for headers in ({CSRF_HEADER: ""}, {CSRF_HEADER: "wrong-token"}):
            response = admin.send(method, path, json=body, headers=headers)
            assert response.status_code == 403 and "CSRF" in response.json()["error"], (method, path, headers)
    user = get_user(web_db, target)
    assert user is not None and user.role == "pending" and not user.disabled  # nothing happened
    assert get_setting(web_db, "signup") == before
    with httpx.Client(base_url=ui.url) as client:
        assert log_in(client, target, "taken-over-1").status_code == 401  # the password was not reset


def test_logout_and_password_forms_need_the_sessions_csrf_token(ui: RunningWeb, accounts: Accounts) -> None:
    name = accounts.user()
    with httpx.Client(base_url=ui.url) as client:
        assert log_in(client, name).status_code == 303
        for extra in ({}, {"csrf_token": "wrong"}):
            assert client.post("/logout", data={"other": "1", **extra}).status_code == 403, extra
            change = client.post("/account", data={"current": PASSWORD, "password": "new-password-9",
                                                   "confirm": "new-password-9", **extra})
            assert change.status_code == 403, extra
        assert client.get("/ui/api/me").status_code == 200  # still logged in, password unchanged
    with httpx.Client(base_url=ui.url) as other:
        assert log_in(other, name).status_code == 303


def test_signup_and_setup_forms_need_the_form_token(ui: RunningWeb, web_db: Database,
                                                    restore_settings: None) -> None:
    """Login CSRF's cousins: a page elsewhere must not create accounts or spend a setup token in the
    visitor's browser. The form token must match the SameSite=Strict cookie the form page set."""
    set_setting(web_db, "signup", "open")
    fields = {"username": "forged-signup", "password": PASSWORD, "confirm": PASSWORD, "token": "x"}
    with httpx.Client(base_url=ui.url) as client:
        for path in ("/signup", "/setup"):
            assert client.post(path, data=fields).status_code == 403, path  # no cookie, no field
            token = form_token(client, "/login")  # the cookie is set now
            assert client.post(path, data={**fields, "form_token": "forged"}).status_code == 403, path
            client.cookies.delete("ember_form")
            assert client.post(path, data={**fields, "form_token": token}).status_code == 403, path
        assert SESSION_COOKIE not in client.cookies
    assert get_user(web_db, "forged-signup") is None


def test_the_gateway_refuses_every_session_write_without_the_csrf_token(
        browser_for: Callable[[str], Browser]) -> None:
    admin = browser_for("admin")
    writes = [("POST", "/api/chat", {"model": "smollm2:135m", "messages": [{"role": "user", "content": "hi"}]}),
              ("POST", "/api/generate", {"model": "smollm2:135m", "prompt": "hi"}),
              ("POST", "/api/embed", {"model": "smollm2:135m", "input": "hi"}),
              ("POST", "/api/pull", {"model": "nothing:here"}),
              ("DELETE", "/api/delete", {"model": "nothing:here"}),
              ("POST", "/v1/chat/completions", {"model": "smollm2:135m", "messages": []})]
    for method, path, body in writes:
        for headers in ({CSRF_HEADER: ""}, {CSRF_HEADER: "wrong-token"}):
            response = admin.send(method, path, json=body, headers=headers)
            assert response.status_code == 403 and "CSRF" in response.text, (method, path)


# -- disable, roles, admin pages ----------------------------------------------------------------------------


def test_a_disabled_user_is_locked_out_of_everything(browser_for: Callable[[str], Browser], ui: RunningWeb) -> None:
    user, admin = browser_for("user"), browser_for("admin")
    assert user.get("/api/tags").status_code == 200
    assert admin.send("PATCH", f"/ui/api/admin/users/{user.user_name}", json={"disabled": True}).status_code == 200
    assert user.get("/api/tags").status_code == 401  # the gateway's own routes too, not only the UI's
    assert user.get("/", follow_redirects=False).headers["location"] == "/login"
    with httpx.Client(base_url=ui.url) as client:
        refused = log_in(client, user.user_name)
        assert refused.status_code == 401 and SESSION_COOKIE not in client.cookies
    # Enabled again, the old session stays ended (disabling ended it server-side); a new login works.
    assert admin.send("PATCH", f"/ui/api/admin/users/{user.user_name}", json={"disabled": False}).status_code == 200
    assert user.get("/ui/api/me").status_code == 401
    with httpx.Client(base_url=ui.url) as client:
        assert log_in(client, user.user_name).status_code == 303


def test_role_changes_act_on_open_sessions(browser_for: Callable[[str], Browser]) -> None:
    user, admin = browser_for("user"), browser_for("admin")
    assert user.get("/ui/api/admin/users").status_code == 403
    assert admin.send("PATCH", f"/ui/api/admin/users/{user.user_name}", json={"role": "admin"}).status_code == 200
    assert user.get("/ui/api/admin/users").status_code == 200
    assert admin.send("PATCH", f"/ui/api/admin/users/{user.user_name}", json={"role": "pending"}).status_code == 200
    assert user.get("/ui/api/me").status_code == 401  # back to waiting: the open session stops
    assert admin.send("PATCH", f"/ui/api/admin/users/{user.user_name}", json={"role": "emperor"}).status_code == 400


def test_unknown_users_and_bad_bodies_are_refused(browser_for: Callable[[str], Browser]) -> None:
    admin = browser_for("admin")
    assert admin.send("PATCH", "/ui/api/admin/users/nobody-at-all", json={"disabled": True}).status_code == 404
    assert admin.post("/ui/api/admin/users/nobody-at-all/password", json={"password": "x" * 10}).status_code == 404
    user = browser_for("user").user_name
    for body in ({}, {"disabled": "yes"}, {"role": 3}):
        assert admin.send("PATCH", f"/ui/api/admin/users/{user}", json=body).status_code == 400, body
    assert admin.post(f"/ui/api/admin/users/{user}/password", json={"password": "short"}).status_code == 400
    assert admin.send("PATCH", f"/ui/api/admin/users/{user}", content=b"[1]",
                      headers={"content-type": "application/json"}).status_code == 400


def test_admin_pages_share_the_layout_and_have_no_inline_scripts(browser_for: Callable[[str], Browser]) -> None:
    admin = browser_for("admin")
    for path in ("/admin/users", "/admin/settings"):
        page = admin.get(path)
        assert page.status_code == 200
        for item in ("Users", "Models", "Policies", "Keys", "Audit", "Settings", "Chat"):
            assert f">{item}</a>" in page.text, (path, item)
        assert 'aria-current="page"' in page.text
        assert "<script>" not in page.text and " on" + "click=" not in page.text  # the CSP allows neither
        assert "script-src 'self'" in page.headers["content-security-policy"]


def test_admin_settings_validate_and_reach_the_documents_backend(browser_for: Callable[[str], Browser],
                                                                 web_db: Database, restore_settings: None) -> None:
    admin = browser_for("admin")
    for body in ({"embed_model": 7}, {"embed_model": " "}, {"signup": None}):
        assert admin.send("PUT", "/ui/api/admin/settings", json=body).status_code == 400, body
    saved = admin.send("PUT", "/ui/api/admin/settings", json={"embed_model": "smollm2:135m", "signup": "closed"})
    assert saved.status_code == 200
    assert get_setting(web_db, "embed_model") == "smollm2:135m"  # the key the rag helper reads
    with httpx.Client(base_url=str(admin.client.base_url)) as visitor:
        assert visitor.get("/signup").status_code == 403  # the run-time mode beats EMBER_SIGNUP


# -- cookie flags -------------------------------------------------------------------------------------------


def test_the_cookie_is_secure_with_ember_cookie_secure(keyed_engine: RunningServer, web_db: Database) -> None:
    name = "secure-cookie-user"
    if get_user(web_db, name) is None:
        create_user(web_db, name, PASSWORD)
    running = start_ui(web_db, [keyed_engine.url], cookie_secure=True)
    try:
        with httpx.Client(base_url=running.url) as client:
            token = form_token(client, "/login")
            # The form cookie is Secure as well, so a client on plain HTTP keeps it to itself: hand it back as
            # the browser behind a TLS proxy would.
            response = client.post("/login", data={"form_token": token, "username": name, "password": PASSWORD},
                                   headers={"cookie": f"ember_form={token}"})
            assert response.status_code == 303
            cookie = next(v for k, v in response.headers.multi_items()
                          if k == "set-cookie" and v.startswith(SESSION_COOKIE + "="))
            flags = [part.strip().lower() for part in cookie.split(";")]
            assert "secure" in flags and "httponly" in flags and "samesite=lax" in flags
    finally:
        running.stop()


# -- login CSRF, logout, the current-password check ---------------------------------------------------------


def test_forms_posted_from_another_origin_are_refused_even_with_a_planted_token(ui: RunningWeb,
                                                                                accounts: Accounts) -> None:
    """A sibling subdomain can plant the double-submit cookie (cookie tossing) but cannot forge Origin."""
    name = accounts.user()
    with httpx.Client(base_url=ui.url) as client:
        token = form_token(client, "/login")
        fields = {"form_token": token, "username": name, "password": PASSWORD}
        for origin in ("https://evil.example", "http://attacker.localhost:8080", "null"):
            refused = client.post("/login", data=fields, headers={"origin": origin})
            assert refused.status_code == 403 and SESSION_COOKIE not in client.cookies, origin
        assert client.post("/login", data=fields, headers={"origin": ui.url}).status_code == 303


def test_logout_with_an_ended_session_just_drops_the_cookie(ui: RunningWeb, accounts: Accounts,
                                                           browser_for: Callable[[str], Browser]) -> None:
    name = accounts.user()
    with httpx.Client(base_url=ui.url) as client:
        assert log_in(client, name).status_code == 303
        csrf = str(client.get("/ui/api/me").json()["csrf_token"])
        admin = browser_for("admin")
        assert admin.post(f"/ui/api/admin/users/{name}/password", json={"password": "reset-by-admin"}).is_success
        response = client.post("/logout", data={"csrf_token": csrf})
        assert response.status_code == 303 and response.headers["location"] == "/login"
        assert SESSION_COOKIE not in client.cookies


def test_the_current_password_check_is_under_the_login_limits(ui: RunningWeb, accounts: Accounts,
                                                              web_db: Database) -> None:
    """A stolen session must not let its thief guess the password behind it at speed."""
    from ember.web.login_limits import ACCOUNT_FAILURES

    name = accounts.user()
    with httpx.Client(base_url=ui.url) as client:
        assert log_in(client, name).status_code == 303
        csrf = str(client.get("/ui/api/me").json()["csrf_token"])
        guess = {"csrf_token": csrf, "current": "guess-0000", "password": "new-password-9",
                 "confirm": "new-password-9"}
        for _ in range(ACCOUNT_FAILURES):
            assert client.post("/account", data=guess).status_code == 403
        locked = client.post("/account", data={**guess, "current": PASSWORD})
        assert locked.status_code == 429 and "retry-after" in locked.headers
    assert authenticate_user(web_db, name, PASSWORD) is not None  # the password did not change
    with httpx.Client(base_url=ui.url) as other:
        assert log_in(other, name).status_code == 429  # and the account's logins wait as well


def test_logging_in_again_ends_the_browsers_previous_session(ui: RunningWeb, accounts: Accounts) -> None:
    first, second = accounts.user(), accounts.user()
    with httpx.Client(base_url=ui.url) as client:
        token = form_token(client, "/login")  # the login page sends a logged-in browser on to the chat
        for name in (first, second):
            response = client.post("/login", data={"form_token": token, "username": name, "password": PASSWORD})
            assert response.status_code == 303
            if name == first:
                old = client.cookies[SESSION_COOKIE]
        assert client.get("/ui/api/me").json()["name"] == second
    assert httpx.get(ui.url + "/ui/api/me", cookies={SESSION_COOKIE: old}).status_code == 401


def test_a_non_ascii_csrf_token_is_refused_not_a_server_error(browser_for: Callable[[str], Browser],
                                                               accounts: Accounts, ui: RunningWeb) -> None:
    admin = browser_for("admin")
    response = admin.send("PUT", "/ui/api/admin/settings", json={"signup": "open"},
                          headers={CSRF_HEADER: "caf\xe9".encode("latin-1")})  # type: ignore[dict-item]
    assert response.status_code == 403 and "CSRF" in response.text
    with httpx.Client(base_url=ui.url) as client:
        assert log_in(client, accounts.user()).status_code == 303
        for field in ("csrf_token", "other"):
            assert client.post("/logout", data={field: "caf\xe9"}).status_code == 403
        token = form_token(client, "/signup")
        assert client.post("/signup", data={"form_token": token + "\xe9", "username": "x",
                                            "password": PASSWORD, "confirm": PASSWORD}).status_code == 403
