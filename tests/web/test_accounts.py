"""Accounts in the web UI: log in and out, sign-up modes, password change, the setup link, login limits, and
the session cookie's flags, through the real web role with its UI (forms posted as a browser posts them)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from ember.db import Database
from ember.db.app_settings import set_setting
from ember.db.users import create_user, get_user
from tests.gateway.harness import RunningWeb
from tests.web.harness import Browser

PASSWORD = "password-for-tests"


def _name(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def form_token(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    found = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def log_in(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    token = form_token(client, "/login")
    return client.post("/login", data={"form_token": token, "username": name, "password": password})


@pytest.fixture
def client(ui: RunningWeb) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ui.url, timeout=60) as c:
        yield c


@pytest.fixture
def signup_mode(web_db: Database) -> Iterator[Callable[[str], None]]:
    yield lambda mode: set_setting(web_db, "signup", mode)
    set_setting(web_db, "signup", "approval")


def csrf_of(client: httpx.Client) -> str:
    return str(client.get("/ui/api/me").json()["csrf_token"])


def test_login_sets_a_hardened_session_cookie_and_opens_the_chat(client: httpx.Client, web_db: Database) -> None:
    name = _name()
    create_user(web_db, name, PASSWORD)
    response = log_in(client, name)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "ember_session=" in v)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Secure" not in cookie
    assert client.get("/").status_code == 200
    assert client.get("/ui/api/me").json()["name"] == name


def test_the_cookie_is_secure_behind_a_tls_proxy(client: httpx.Client, web_db: Database) -> None:
    name = _name()
    create_user(web_db, name, PASSWORD)
    token = form_token(client, "/login")
    response = client.post("/login", data={"form_token": token, "username": name, "password": PASSWORD},
                           headers={"x-forwarded-proto": "https"})
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and "ember_session=" in v)
    assert "Secure" in cookie


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(client: httpx.Client,
                                                                        web_db: Database) -> None:
    name = _name()
    create_user(web_db, name, PASSWORD)
    response = log_in(client, name, "not-the-password")
    assert response.status_code == 401 and "Wrong user name or password" in response.text
    assert "ember_session" not in client.cookies


def test_login_without_the_form_token_is_refused(client: httpx.Client, web_db: Database) -> None:
    name = _name()
    create_user(web_db, name, PASSWORD)
    client.get("/login")
    response = client.post("/login", data={"form_token": "forged", "username": name, "password": PASSWORD})
    assert response.status_code == 403 and "ember_session" not in client.cookies


def test_logout_ends_the_session_on_the_server(client: httpx.Client, web_db: Database) -> None:
    name = _name()
    create_user(web_db, name, PASSWORD)
    log_in(client, name)
    stolen = client.cookies["ember_session"]
    csrf = csrf_of(client)
    assert client.post("/logout", data={"csrf_token": "wrong"}).status_code == 403
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 303
    with httpx.Client(base_url=str(client.base_url), cookies={"ember_session": stolen}) as other:
        assert other.get("/ui/api/me").status_code == 401


def test_login_attempts_are_limited_per_account(client: httpx.Client, web_db: Database) -> None:
    name = _name()
    create_user(web_db, name, PASSWORD)
    statuses = [log_in(client, name, "wrong-password").status_code for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    limited = log_in(client, name)  # even the right password waits now
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert "too many login attempts for this account" in limited.text


def test_open_sign_up_gives_a_usable_account(client: httpx.Client, signup_mode: Callable[[str], None]) -> None:
    signup_mode("open")
    name = _name("open")
    token = form_token(client, "/signup")
    response = client.post("/signup", data={"form_token": token, "username": name, "password": PASSWORD,
                                            "confirm": PASSWORD})
    assert response.status_code == 303
    assert client.get("/ui/api/me").json() == {"name": name, "role": "user", "csrf_token": csrf_of(client)}


def test_approval_sign_up_waits_for_an_admin(client: httpx.Client, web_db: Database,
                                             browser_for: Callable[[str], Browser],
                                             signup_mode: Callable[[str], None]) -> None:
    signup_mode("approval")
    name = _name("wait")
    token = form_token(client, "/signup")
    response = client.post("/signup", data={"form_token": token, "username": name, "password": PASSWORD,
                                            "confirm": PASSWORD})
    assert response.status_code == 201 and "must approve" in response.text
    assert get_user(web_db, name).role == "pending"  # type: ignore[union-attr]
    refused = log_in(client, name)
    assert refused.status_code == 403 and "waiting for an admin" in refused.text
    admin = browser_for("admin")
    approved = admin.send("PATCH", f"/ui/api/admin/users/{name}", json={"role": "user"})
    assert approved.status_code == 200 and approved.json()["role"] == "user"
    assert log_in(client, name).status_code == 303


def test_closed_sign_up_refuses_the_form(client: httpx.Client, signup_mode: Callable[[str], None]) -> None:
    signup_mode("closed")
    assert client.get("/signup").status_code == 403
    response = client.post("/signup", data={"form_token": form_token(client, "/login"), "username": _name(),
                                            "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 403 and "closed" in response.text


def test_password_change_ends_the_other_sessions(client: httpx.Client, web_db: Database, ui: RunningWeb) -> None:
    name = _name()
    create_user(web_db, name, PASSWORD)
    with httpx.Client(base_url=ui.url) as other_device:
        log_in(other_device, name)
        log_in(client, name)
        csrf = csrf_of(client)
        wrong = client.post("/account", data={"csrf_token": csrf, "current": "nope", "password": "new-password-1",
                                              "confirm": "new-password-1"})
        assert wrong.status_code == 403
        changed = client.post("/account", data={"csrf_token": csrf, "current": PASSWORD,
                                                "password": "new-password-1", "confirm": "new-password-1"})
        assert changed.status_code == 200 and "changed" in changed.text
        assert client.get("/ui/api/me").status_code == 200
        assert other_device.get("/ui/api/me").status_code == 401
    client.cookies.delete("ember_session")
    assert log_in(client, name, "new-password-1").status_code == 303


def test_a_disabled_users_open_session_stops_at_once(browser_for: Callable[[str], Browser]) -> None:
    user, admin = browser_for("user"), browser_for("admin")
    assert user.get("/ui/api/me").status_code == 200
    assert admin.send("PATCH", f"/ui/api/admin/users/{user.user_name}", json={"disabled": True}).status_code == 200
    assert user.get("/ui/api/me").status_code == 401
    assert user.get("/ui/api/chats").status_code == 401
    assert admin.send("PATCH", f"/ui/api/admin/users/{user.user_name}", json={"disabled": False}).status_code == 200


def test_admin_reset_password_ends_the_users_sessions(browser_for: Callable[[str], Browser],
                                                      client: httpx.Client) -> None:
    user, admin = browser_for("user"), browser_for("admin")
    reset = admin.post(f"/ui/api/admin/users/{user.user_name}/password", json={"password": "reset-by-admin"})
    assert reset.status_code == 204
    assert user.get("/ui/api/me").status_code == 401
    assert log_in(client, user.user_name, "reset-by-admin").status_code == 303


def test_state_changing_routes_need_the_csrf_token(browser_for: Callable[[str], Browser]) -> None:
    admin = browser_for("admin")
    target = browser_for("user").user_name
    for headers in ({}, {"x-csrf-token": "wrong"}):
        bare = admin.client.request("PATCH", f"/ui/api/admin/users/{target}", json={"role": "admin"},
                                    headers=headers)
        assert bare.status_code == 403 and "csrf" in bare.text.lower()
        chat = admin.client.post("/api/chat", json={"model": "smollm2:135m", "messages": []}, headers=headers)
        assert chat.status_code == 403 and "csrf" in chat.text.lower()
        settings = admin.client.put("/ui/api/admin/settings", json={"signup": "open"}, headers=headers)
        assert settings.status_code == 403


def test_admin_settings_round_trip(browser_for: Callable[[str], Browser],
                                   signup_mode: Callable[[str], None]) -> None:
    admin = browser_for("admin")
    assert admin.send("PUT", "/ui/api/admin/settings", json={"signup": "sideways"}).status_code == 400
    saved = admin.send("PUT", "/ui/api/admin/settings", json={"signup": "open", "embed_model": "smollm2:135m"})
    assert saved.status_code == 200 and saved.json() == {"signup": "open", "embed_model": "smollm2:135m"}
    assert admin.get("/ui/api/admin/settings").json()["signup"] == "open"


def test_the_setup_link_makes_the_first_admin_and_logs_them_in(tmp_path: object, keyed_engine: object) -> None:
    from ember.db.users import create_setup_token
    from tests.web.harness import start_ui

    database = Database.open(f"sqlite:///{tmp_path}/setup.db")
    database.migrate()
    token = create_setup_token(database)
    running = start_ui(database, ["http://127.0.0.1:9"])
    try:
        with httpx.Client(base_url=running.url) as browser:
            assert browser.get(f"/setup?token={token}").status_code == 200
            form = form_token(browser, f"/setup?token={token}")
            made = browser.post("/setup", data={"form_token": form, "token": token, "username": "boss",
                                                "password": PASSWORD, "confirm": PASSWORD})
            assert made.status_code == 303
            assert browser.get("/ui/api/me").json()["role"] == "admin"
            assert browser.get(f"/setup?token={token}").status_code == 410
    finally:
        running.stop()
        database.close()
