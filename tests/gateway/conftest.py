"""Shared parts of the gateway suite: one real engine that demands EMBER_ENGINE_KEY (in this process, with
real runner processes), one web role in front of it on SQLite, and a factory for users and keys."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ember.db import Database
from tests.gateway.harness import ENGINE_KEY, Accounts, RunningWeb, start_web
from tests.server_harness import RunningServer, free_port, start_server

REDIS_URL = "redis://127.0.0.1:6379/0"  # the machine's Redis


@pytest.fixture(scope="session")
def keyed_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("gw-models"), engine_key=ENGINE_KEY)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def web_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database.open(f"sqlite:///{tmp_path_factory.mktemp('gw-home') / 'ember.db'}")
    database.migrate()
    yield database
    database.close()


@pytest.fixture(scope="session")
def web(keyed_engine: RunningServer, web_db: Database) -> Iterator[RunningWeb]:
    running = start_web(web_db, [keyed_engine.url])
    yield running
    running.stop()


@pytest.fixture(scope="session")
def accounts(web_db: Database) -> Accounts:
    return Accounts(web_db)


@pytest.fixture
def key(accounts: Accounts) -> str:
    """A key with the chat, embed and models scopes, for all models."""
    return accounts.key()


@pytest.fixture
def fresh_db(tmp_path: Path) -> Iterator[Database]:
    database = Database.open(f"sqlite:///{tmp_path / 'ember.db'}")
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def web_without_engines(fresh_db: Database) -> Iterator[RunningWeb]:
    """A web role whose one engine URL is a closed port."""
    running = start_web(fresh_db, [f"http://127.0.0.1:{free_port()}"])
    yield running
    running.stop()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A Redis key prefix no other test (or helper) uses; its keys are deleted afterwards."""
    chosen = f"ember-test-{uuid.uuid4().hex}:"
    yield chosen
    client = Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=chosen + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
