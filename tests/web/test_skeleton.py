"""The web role serves its UI: pages need a session, assets are packaged, gzip-compressed and cacheable."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import httpx

from ember.web.assets import load_asset
from tests.gateway.harness import RunningWeb
from tests.web.harness import Browser


def test_root_without_a_session_redirects_to_the_login_page(ui: RunningWeb) -> None:
    response = httpx.get(ui.url + "/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_root_with_a_session_serves_the_chat_page_with_a_csrf_token(browser_for: Callable[[str], Browser]) -> None:
    browser = browser_for("user")
    response = browser.get("/")
    assert response.status_code == 200
    assert f'name="csrf-token" content="{browser.csrf_token}"' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_assets_come_gzipped_with_an_etag_and_revalidate(ui: RunningWeb) -> None:
    with httpx.Client(base_url=ui.url) as client:
        response = client.get("/static/vendor/dompurify/purify.min.js", headers={"accept-encoding": "gzip"})
        assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"
        assert "DOMPurify" in response.text  # httpx decoded it
        again = client.get("/static/vendor/dompurify/purify.min.js",
                           headers={"if-none-match": response.headers["etag"]})
        assert again.status_code == 304


def test_asset_paths_cannot_leave_the_static_folder(ui: RunningWeb) -> None:
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/.hidden", "/static/vendor/../../app.py"):
        assert httpx.get(ui.url + path).status_code == 404, path


def test_gzip_is_real(ui: RunningWeb) -> None:
    raw = httpx.get(ui.url + "/static/ember.css", headers={"accept-encoding": "gzip"})
    assert raw.status_code == 200
    with httpx.Client() as client:
        stream = client.build_request("GET", ui.url + "/static/ember.css", headers={"accept-encoding": "gzip"})
        response = client.send(stream, stream=True)
        body = b"".join(response.iter_raw())
        assert gzip.decompress(body) == load_asset("ember.css").body  # type: ignore[union-attr]
