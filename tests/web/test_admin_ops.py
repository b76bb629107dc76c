"""Admin operations in the web UI: the models, policies, keys and audit pages and their JSON API, through the
real web role with its UI in front of a real engine with the bundled model."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ember.db import Database
from ember.db.policies import delete_policy
from tests.gateway.harness import Accounts, RunningWeb
from tests.web.harness import Browser

MODEL = "smollm2:135m"
PAGES = ["/admin/models", "/admin/policies", "/admin/keys", "/admin/audit"]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def admin(browser_for: Callable[[str], Browser]) -> Browser:
    return browser_for("admin")


def test_admin_pages_are_served_to_admins_with_their_scripts_and_no_inline_code(admin: Browser) -> None:
    for path in PAGES:
        page = admin.get(path)
        assert page.status_code == 200, path
        assert f'src="/static/admin_{path.rsplit("/", 1)[1]}.js"' in page.text
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) is None, f"inline script on {path}"
        assert 'aria-current="page"' in page.text
        script = admin.get(f"/static/admin_{path.rsplit('/', 1)[1]}.js")
        assert script.status_code == 200 and "ember" in script.text


def test_policy_round_trip_and_validation(admin: Browser) -> None:
    model = _name("policy-model")
    url = f"/ui/api/admin/policies/{model}"
    for bad, why in [({"defaults": {"temperature": "hot"}}, "temperature"),
                     ({"defaults": {"num_ctx": 1}}, "num_ctx"), ({"defaults": {"colour": 1}}, "colour"),
                     ({"locked": ["colour"]}, "colour"), ({"defaults": {"keep_alive": "soon"}}, "soon"),
                     ({"defaults": []}, "defaults"), ({"system": 5}, "system")]:
        refused = admin.send("PUT", url, json=bad)
        assert refused.status_code == 400 and why in refused.json()["error"], (bad, refused.text)
    assert admin.send("PUT", "/ui/api/admin/policies/Bad Name!", json={}).status_code == 400

    saved = admin.send("PUT", url, json={"system": "Be brief.", "defaults": {"temperature": 0.2, "keep_alive": "10m",
                                                                              "stop": "END"},
                                         "locked": ["temperature", "system"]})
    assert saved.status_code == 200, saved.text
    expected = {"model": f"{model}:latest", "system": "Be brief.",
                "defaults": {"temperature": 0.2, "keep_alive": "10m", "stop": ["END"]},
                "locked": ["system", "temperature"]}
    assert saved.json() == expected
    listed = admin.get("/ui/api/admin/policies").json()
    assert expected in listed["policies"] and listed["options"]["temperature"] == "float"

    replaced = admin.send("PUT", f"{url}:latest", json={"locked": ["num_predict"]})
    assert replaced.json()["defaults"] == {} and replaced.json()["locked"] == ["num_predict"]
    assert admin.send("DELETE", url).status_code == 204
    assert admin.send("DELETE", url).status_code == 404
    assert all(p["model"] != f"{model}:latest" for p in admin.get("/ui/api/admin/policies").json()["policies"])


@pytest.fixture
def bundled_policy(web_db: Database) -> Iterator[None]:
    yield
    delete_policy(web_db, MODEL)  # other tests chat with the bundled model: leave it unpoliced


def test_a_locked_option_set_on_the_page_is_enforced_by_the_gateway(admin: Browser, ui: RunningWeb,
                                                                    accounts: Accounts, bundled_policy: None) -> None:
    saved = admin.send("PUT", f"/ui/api/admin/policies/{MODEL}",
                       json={"defaults": {"num_predict": 2, "temperature": 0}, "locked": ["num_predict"]})
    assert saved.status_code == 200, saved.text
    with ui.client(accounts.key()) as client:
        answer = client.post("/api/generate", json={"model": MODEL, "prompt": "Count to fifty:", "stream": False,
                                                     "options": {"num_predict": 40}})
    assert answer.status_code == 200, answer.text
    assert "num_predict" in answer.headers.get("x-ember-overridden", "")
    assert answer.json()["eval_count"] <= 2


def test_keys_are_created_with_the_secret_shown_once_and_revoked(admin: Browser, ui: RunningWeb,
                                                                accounts: Accounts) -> None:
    owner, name = accounts.user("user"), _name("key")
    expires = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    made = admin.post("/ui/api/admin/keys", json={"name": name, "user": owner, "scopes": ["models", "chat"],
                                                  "models": ["smollm2:135m"], "rpm": 60, "tpm": None,
                                                  "concurrency": 2, "expires_at": expires})
    assert made.status_code == 201, made.text
    secret, key = made.json()["secret"], made.json()["key"]
    assert secret.startswith("ember_sk_") and key["hint"] == secret[:13] + "..."
    assert key | {"created_at": None, "expires_at": None} == {
        "name": name, "hint": key["hint"], "user": owner, "scopes": ["chat", "models"], "models": [MODEL],
        "rpm": 60, "tpm": None, "concurrency": 2, "created_at": None, "expires_at": None, "revoked_at": None,
        "status": "active"}
    listing = admin.get("/ui/api/admin/keys")
    assert secret not in listing.text and secret[13:] not in listing.text
    assert any(k["name"] == name for k in listing.json()["keys"])

    with ui.client(secret) as client:
        tags = client.get("/api/tags")
        assert tags.status_code == 200 and [m["name"] for m in tags.json()["models"]] == [MODEL]
        revoked = admin.send("DELETE", f"/ui/api/admin/keys/{name}")
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        assert client.get("/api/tags").status_code == 401
    assert admin.send("DELETE", f"/ui/api/admin/keys/{name}").status_code == 404


def test_key_creation_says_what_is_wrong(admin: Browser, accounts: Accounts) -> None:
    owner, taken = accounts.user("user"), _name("key")
    assert admin.post("/ui/api/admin/keys", json={"name": taken, "user": owner, "scopes": ["chat"]}).status_code == 201
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for body, status, why in [
            ({"name": taken, "user": owner, "scopes": ["chat"]}, 409, taken),
            ({"name": _name("key"), "user": "nobody-" + taken, "scopes": ["chat"]}, 404, "nobody"),
            ({"name": _name("key"), "user": owner, "scopes": ["fly"]}, 400, "fly"),
            ({"name": _name("key"), "user": owner, "scopes": []}, 400, "scope"),
            ({"name": _name("key"), "user": owner, "scopes": ["chat"], "rpm": -1}, 400, "rpm"),
            ({"name": _name("key"), "user": owner, "scopes": ["chat"], "expires_at": past}, 400, "future"),
            ({"name": _name("key"), "user": owner, "scopes": ["chat"], "expires_at": "soon"}, 400, "ISO"),
            ({"name": "", "user": owner, "scopes": ["chat"]}, 400, "name")]:
        refused = admin.post("/ui/api/admin/keys", json=body)
        assert refused.status_code == status and why in refused.json()["error"], (body, refused.text)


def test_audit_filters_return_the_matching_requests(browser_for: Callable[[str], Browser], ui: RunningWeb) -> None:
    admin = browser_for("admin")
    started = datetime.now(UTC) - timedelta(seconds=1)
    assert admin.get("/api/tags").status_code == 200
    assert admin.post("/api/show", json={"model": MODEL}).status_code == 200
    assert admin.post("/api/show", json={"model": "no-such-model:1b"}).status_code == 404
    ui.flush_audit()

    def events(**params: str) -> list[dict[str, object]]:
        answer = admin.get("/ui/api/admin/audit", params={"user": admin.user_name, **params})
        assert answer.status_code == 200, answer.text
        found: list[dict[str, object]] = answer.json()["events"]
        return found

    everything = events()
    assert [e["route"] for e in everything] == ["/api/show", "/api/show", "/api/tags"]  # newest first
    assert all(e["user_name"] == admin.user_name and "prompt_body" not in e for e in everything)
    assert [e["model"] for e in events(status="404")] == ["no-such-model:1b"]
    assert [e["status"] for e in events(model=MODEL)] == [200]
    assert len(events(limit="1")) == 1
    assert len(events(since="1h")) == 3 and len(events(since=started.isoformat())) == 3
    assert events(since=(datetime.now(UTC) + timedelta(minutes=5)).isoformat()) == []
    assert events(user="nobody-" + admin.user_name) == []
    for params in ({"status": "ok"}, {"limit": "0"}, {"limit": "5000"}, {"since": "yesterday"}, {"since": "-1h"}):
        refused = admin.get("/ui/api/admin/audit", params=params)
        assert refused.status_code == 400 and refused.json()["error"], params


def test_audit_route_filter_time_range_and_pages(browser_for: Callable[[str], Browser], ui: RunningWeb) -> None:
    admin = browser_for("admin")
    for _ in range(3):
        assert admin.get("/api/tags").status_code == 200
    assert admin.post("/api/show", json={"model": MODEL}).status_code == 200
    ui.flush_audit()
    mine = {"user": admin.user_name}

    def page(**params: str) -> dict[str, object]:
        answer = admin.get("/ui/api/admin/audit", params={**mine, **params})
        assert answer.status_code == 200, answer.text
        found: dict[str, object] = answer.json()
        return found

    def routes(found: dict[str, object]) -> list[object]:
        events = found["events"]
        assert isinstance(events, list)
        return [e["route"] for e in events]

    assert routes(page(route="/api/tags")) == ["/api/tags"] * 3
    assert routes(page(route="/api/show")) == ["/api/show"]
    assert routes(page(route="/api/nothing-here")) == []
    pinned = page()["until"]  # the server's now, the end of the range it applied
    assert isinstance(pinned, str) and datetime.fromisoformat(pinned) <= datetime.now(UTC)
    first, second = page(limit="3", until=pinned), page(limit="3", offset="3", until=pinned)
    assert first["until"] == pinned
    assert routes(first) == ["/api/show", "/api/tags", "/api/tags"] and first["next_offset"] == 3
    assert routes(second) == ["/api/tags"] and second["next_offset"] is None
    # Traffic after the pinned instant stays off the pages already pinned to it.
    assert admin.get("/api/tags").status_code == 200
    ui.flush_audit()
    assert routes(page(limit="3", offset="3", until=pinned)) == ["/api/tags"]
    assert len(routes(page(limit="10"))) == 5
    assert page(until="1h")["events"] == []  # everything above happened within the last hour
    for params in ({"offset": "-1"}, {"offset": "x"}, {"until": "tomorrow"}):
        refused = admin.get("/ui/api/admin/audit", params=params)
        assert refused.status_code == 400 and refused.json()["error"], params
    assert "until" in admin.get("/ui/api/admin/audit", params={"until": "tomorrow"}).json()["error"]


def test_a_pull_that_fails_inside_its_stream_is_audited_as_failed(admin: Browser, ui: RunningWeb) -> None:
    # The engine answers a pull with 200 and reports a registry it cannot reach in a final {"error"} line.
    name = f"library-ember-test/{_name('not-here')}:1b"
    pulled = admin.post("/api/pull", json={"model": name}, timeout=120)
    assert pulled.status_code == 200
    assert "error" in pulled.text.strip().splitlines()[-1]
    ui.flush_audit()
    answer = admin.get("/ui/api/admin/audit", params={"user": admin.user_name, "route": "/api/pull"})
    (event,) = [e for e in answer.json()["events"] if e["model"] == name]
    assert event["status"] == 502 and event["error"], event


def test_a_key_whose_name_has_a_slash_can_be_revoked(admin: Browser, accounts: Accounts) -> None:
    name = f"team/{_name('ci')}"
    made = admin.post("/ui/api/admin/keys", json={"name": name, "user": accounts.user("user"), "scopes": ["chat"]})
    assert made.status_code == 201, made.text
    revoked = admin.send("DELETE", "/ui/api/admin/keys/" + name.replace("/", "%2F"))
    assert revoked.status_code == 200 and revoked.json()["name"] == name and revoked.json()["revoked_at"]
