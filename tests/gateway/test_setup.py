"""The first admin through the one-time setup link."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from ember.db import Database
from ember.db.users import authenticate_user
from tests.gateway.harness import RunningWeb, start_web
from tests.server_harness import free_port


@pytest.fixture
def setup_web(fresh_db: Database, caplog: pytest.LogCaptureFixture) -> Iterator[RunningWeb]:
    caplog.set_level(logging.WARNING, logger="ember.gateway.setup")
    running = start_web(fresh_db, [f"http://127.0.0.1:{free_port()}"])
    yield running
    running.stop()


def test_setup_link_creates_the_first_admin_once(setup_web: RunningWeb, fresh_db: Database,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    logged = " ".join(r.getMessage() for r in caplog.get_records("setup"))
    found = re.search(r"(http://\S+)/setup\?token=(\S+)", logged)
    assert found and found.group(1) == setup_web.url
    token = found.group(2)
    form = httpx.get(setup_web.url + "/setup", params={"token": token})
    assert form.status_code == 200 and 'name="token"' not in form.text and "name=token" in form.text
    guess = httpx.post(setup_web.url + "/setup", data={"token": "guessed", "name": "eve", "password": "x" * 12})
    assert guess.status_code == 403 and authenticate_user(fresh_db, "eve", "x" * 12) is None
    short = httpx.post(setup_web.url + "/setup", data={"token": token, "name": "root", "password": "short"})
    assert short.status_code == 400 and "at least 8" in short.text  # the token is not spent by a bad form
    made = httpx.post(setup_web.url + "/setup", data={"token": token, "name": "root", "password": "long enough"})
    assert made.status_code == 200 and "root" in made.text
    user = authenticate_user(fresh_db, "root", "long enough")
    assert user is not None and user.role == "admin"
    again = httpx.post(setup_web.url + "/setup", data={"token": token, "name": "two", "password": "long enough"})
    assert again.status_code == 403
    assert httpx.get(setup_web.url + "/setup", params={"token": token}).status_code == 410
