"""Every admin URL the UI has, found from its route table (so a route added later is covered without editing
this test), is refused by the server: 403 for a logged-in non-admin, the login page or 401 for nobody; and a
state-changing admin route without the CSRF token is refused even for an admin."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
from starlette.routing import Route

from ember.gateway.auth import CSRF_HEADER
from ember.web.routes import ui_routes
from tests.gateway.harness import RunningWeb
from tests.web.harness import Browser

PROBE = "guard-probe"  # stands in for every path parameter (a user, key or model name that does not exist)


def admin_routes() -> list[tuple[str, str]]:
    found = []
    for route in ui_routes():
        if isinstance(route, Route) and route.path.startswith(("/admin", "/ui/api/admin")):
            path = re.sub(r"\{[^}]+\}", PROBE, route.path)
            found += [(method, path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


def test_the_route_table_has_the_admin_routes_this_test_relies_on() -> None:
    routes = admin_routes()
    assert ("GET", "/admin/users") in routes and ("PATCH", f"/ui/api/admin/users/{PROBE}") in routes
    assert len(routes) >= 15


def test_non_admins_get_403_on_every_admin_route(browser_for: Callable[[str], Browser]) -> None:
    user = browser_for("user")
    # A body that would make the caller an admin, or give them an admin key, if the route let it through.
    escalation = {"role": "admin", "name": "k", "user": user.user_name, "scopes": ["admin"]}
    for method, path in admin_routes():
        response = user.send(method, path, json=escalation, follow_redirects=False)
        assert response.status_code == 403, (method, path, response.status_code)


def test_nobody_is_sent_to_log_in_on_every_admin_route(ui: RunningWeb) -> None:
    with httpx.Client(base_url=ui.url, follow_redirects=False) as anonymous:
        for method, path in admin_routes():
            response = anonymous.request(method, path, json={})
            if path.startswith("/admin"):
                assert response.status_code == 303 and response.headers["location"] == "/login", (method, path)
            else:
                assert response.status_code == 401, (method, path, response.status_code)


def test_admin_writes_without_the_csrf_token_are_refused_on_every_admin_route(
        browser_for: Callable[[str], Browser]) -> None:
    admin = browser_for("admin")
    writes = [(m, p) for m, p in admin_routes() if m not in ("GET", "HEAD")]
    assert writes
    for method, path in writes:
        without = admin.client.request(method, path, json={})  # no token header at all
        assert without.status_code == 403 and "CSRF" in without.text, (method, path)
        for headers in ({CSRF_HEADER: ""}, {CSRF_HEADER: "wrong-token"}):
            response = admin.send(method, path, json={}, headers=headers)
            assert response.status_code == 403 and "CSRF" in response.text, (method, path)
