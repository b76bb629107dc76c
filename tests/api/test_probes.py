"""/healthz and /readyz on the real engine app: a real server on a loopback port, or the app without its
lifespan (which is what an engine that has not finished starting looks like)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ember.api.app import create_app
from ember.config import Settings
from ember.probes import Readiness
from tests.server_harness import RunningServer, start_server


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path / "models", bundled_model="")
    yield running
    running.stop()


def checks(response: httpx.Response) -> dict[str, bool]:
    return {check.name: check.ok for check in Readiness.from_json(response.json()).checks}


def test_probes_pass_on_a_started_engine(engine: RunningServer) -> None:
    with engine.client() as client:
        live, ready = client.get("/healthz"), client.get("/readyz")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    assert checks(live) == {"event_loop": True}
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert checks(ready) == {"event_loop": True, "store": True, "preload": True, "runner_supervisor": True}


def test_probes_answer_any_host_header_while_the_api_refuses_it(engine: RunningServer) -> None:
    pod = {"host": "ember-engine-0.ember.svc.cluster.example.com:11434"}
    with engine.client() as client:
        assert client.get("/api/version", headers=pod).status_code == 403
        assert client.get("/healthz", headers=pod).status_code == 200
        assert client.get("/readyz", headers=pod).status_code == 200


def test_readyz_fails_naming_the_store_when_it_is_gone(engine: RunningServer) -> None:
    shutil.rmtree(engine.settings.models_path / "manifests")
    with engine.client() as client:
        ready, live = client.get("/readyz"), client.get("/healthz")
    assert ready.status_code == 503 and ready.json()["status"] == "fail"
    assert checks(ready)["store"] is False and checks(ready)["runner_supervisor"] is True
    assert "manifests" in next(c for c in ready.json()["checks"] if c["name"] == "store")["detail"]
    assert live.status_code == 200  # liveness must not restart a pod for a volume problem


def test_readyz_fails_when_the_reaper_has_stopped(engine: RunningServer) -> None:
    scheduler = engine.services.scheduler
    reaper = scheduler._reaper
    assert reaper is not None
    reaper.get_loop().call_soon_threadsafe(reaper.cancel)
    with engine.client() as client:
        for _ in range(50):
            ready = client.get("/readyz")
            if ready.status_code == 503:
                break
    assert ready.status_code == 503 and checks(ready)["runner_supervisor"] is False


async def test_readyz_fails_before_start_up_has_finished(tmp_path: Path) -> None:
    settings = Settings.from_env({}, models_dir=tmp_path, preload=("smollm2:135m",))
    transport = httpx.ASGITransport(app=create_app(settings))  # no lifespan: preloads and the reaper not run
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:11434") as client:
        ready, live = await client.get("/readyz"), await client.get("/healthz")
    assert ready.status_code == 503
    assert checks(ready)["preload"] is False and checks(ready)["runner_supervisor"] is False
    assert live.status_code == 200


def test_a_probe_body_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError, match="checks"):
        Readiness.from_json({"status": "ok"})
    with pytest.raises(ValueError, match="name"):
        Readiness.from_json({"checks": [{"ok": True}]})
