"""EMBER_ENGINE_KEY on the engine, the probe exemption, and the refusal to run open off loopback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ember.api.app import create_app
from ember.api.engine_key import check_exposure
from ember.config import Settings
from ember.errors import UnsafeExposure
from tests.gateway.harness import ENGINE_KEY
from tests.server_harness import RunningServer, start_server


@pytest.fixture(scope="module")
def keyed_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("keyed"), engine_key=ENGINE_KEY, bundled_model="")
    yield running
    running.stop()


def test_engine_demands_its_key(keyed_engine: RunningServer) -> None:
    with keyed_engine.client() as client:
        missing = client.get("/api/tags")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "EMBER_ENGINE_KEY" in missing.json()["error"]
        wrong = client.post("/v1/chat/completions", json={}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        assert client.get("/api/tags", headers={"Authorization": f"Bearer {ENGINE_KEY}"}).status_code == 200
        assert client.get("/api/tags", headers={"x-api-key": ENGINE_KEY}).status_code == 200


def test_probe_paths_need_no_key(keyed_engine: RunningServer) -> None:
    with keyed_engine.client() as client:
        for path in ("/healthz", "/readyz"):
            assert client.get(path).status_code != 401


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings.from_env({}, host="0.0.0.0:11999", models_dir=tmp_path, **values)


def test_non_loopback_bind_without_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeExposure, match="EMBER_ENGINE_KEY"):
        create_app(_settings(tmp_path))
    assert check_exposure(_settings(tmp_path, engine_key="k")) is False
    assert check_exposure(Settings.from_env({}, host="127.0.0.1:1")) is False


async def test_allowed_open_engine_warns_at_start_and_on_version(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ember.api.engine_key")
    app = create_app(_settings(tmp_path, allow_open_engine=True))
    assert "without EMBER_ENGINE_KEY" in caplog.text
    caplog.clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://engine") as client:
        assert (await client.get("/api/version")).status_code == 200
    assert "without EMBER_ENGINE_KEY" in caplog.text
