"""EMBER_ANONYMOUS: no key needed while the web role is bound to loopback, ignored anywhere else."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ember.config import Settings
from ember.db import Database
from ember.gateway.app import anonymous_allowed
from tests.gateway.harness import RunningWeb, start_web
from tests.server_harness import RunningServer


@pytest.fixture
def anonymous_web(keyed_engine: RunningServer, fresh_db: Database) -> Iterator[RunningWeb]:
    running = start_web(fresh_db, [keyed_engine.url], anonymous=True)
    yield running
    running.stop()


def test_anonymous_on_loopback(anonymous_web: RunningWeb) -> None:
    assert httpx.get(anonymous_web.url + "/api/tags").status_code == 200
    placeholder = httpx.get(anonymous_web.url + "/v1/models", headers={"Authorization": "Bearer sk-placeholder"})
    assert placeholder.status_code == 200  # an SDK's dummy key counts as no key
    wrong = httpx.get(anonymous_web.url + "/api/tags", headers={"x-api-key": "ember_sk_" + "x" * 43})
    assert wrong.status_code == 401  # a wrong Ember key is still wrong
    assert httpx.get(anonymous_web.url + "/metrics").status_code in (403, 404)  # no admin scope for anyone
    rebound = httpx.get(anonymous_web.url + "/api/tags", headers={"Host": "attacker.example:8080"})
    assert rebound.status_code == 401  # a DNS-rebinding page reaches loopback under its own name: no free pass


def test_anonymous_is_ignored_off_loopback(caplog: pytest.LogCaptureFixture) -> None:
    assert anonymous_allowed(Settings.from_env({}, anonymous=True, web_host="127.0.0.1:8080"))
    assert anonymous_allowed(Settings.from_env({}, anonymous=True, web_host="[::1]:8080"))
    assert not anonymous_allowed(Settings.from_env({}, anonymous=True, web_host="0.0.0.0:8080"))
    assert "EMBER_ANONYMOUS=true is ignored" in caplog.text
    assert not anonymous_allowed(Settings.from_env({}, web_host="127.0.0.1:8080"))
