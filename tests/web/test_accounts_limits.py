"""Login attempts limited per account and per address: through the login and sign-up forms, and the counters
themselves (in memory with a fake clock, and in the machine's real Redis as two replicas sharing one count)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from ember.config import Settings
from ember.db import Database
from ember.db.app_settings import get_setting, set_setting
from ember.errors import RateLimited
from ember.web.login_limits import (
    ACCOUNT_FAILURES,
    ADDRESS_FAILURES,
    WINDOW,
    LoginLimits,
    MemoryCounter,
    RedisCounter,
    build_login_limits,
)
from tests.gateway.conftest import REDIS_URL
from tests.gateway.harness import Accounts, RunningWeb

PASSWORD = "password-for-tests"


def form_post(ui: RunningWeb, path: str, **fields: str) -> httpx.Response:
    with httpx.Client(base_url=ui.url) as client:
        found = re.search(r'name="form_token" value="([^"]+)"', client.get("/login").text)
        assert found
        return client.post(path, data={"form_token": found.group(1), **fields})


def attempt(ui: RunningWeb, name: str, password: str) -> httpx.Response:
    return form_post(ui, "/login", username=name, password=password)


def test_an_account_is_locked_after_its_failures_even_for_the_right_password(ui: RunningWeb,
                                                                            accounts: Accounts) -> None:
    name, other = accounts.user(), accounts.user()
    for _ in range(ACCOUNT_FAILURES):
        assert attempt(ui, name, "wrong-guess-123").status_code == 401
    locked = attempt(ui, name, PASSWORD)
    assert locked.status_code == 429
    assert not any("ember_session=" in v for k, v in locked.headers.multi_items() if k == "set-cookie")
    assert WINDOW - 60 <= int(locked.headers["retry-after"]) <= WINDOW  # the window, not a per-minute refill
    assert "too many login attempts for this account" in locked.text and "15 minutes" in locked.text
    assert attempt(ui, name.upper(), PASSWORD).status_code == 429  # the name's case does not reset the count
    assert attempt(ui, other, PASSWORD).status_code == 303  # other accounts from the same address still work


def test_a_success_clears_the_accounts_count(ui: RunningWeb, accounts: Accounts) -> None:
    name = accounts.user()
    for _ in range(ACCOUNT_FAILURES - 1):
        assert attempt(ui, name, "wrong-guess-123").status_code == 401
    assert attempt(ui, name, PASSWORD).status_code == 303
    for _ in range(ACCOUNT_FAILURES - 1):
        assert attempt(ui, name, "wrong-guess-123").status_code == 401
    assert attempt(ui, name, PASSWORD).status_code == 303  # a user who mistypes now and then is never locked


def test_an_address_is_locked_after_failures_across_accounts(ui: RunningWeb, accounts: Accounts) -> None:
    for n in range(ADDRESS_FAILURES):
        assert attempt(ui, f"spray-{n}", "wrong-guess-123").status_code == 401
    locked = attempt(ui, accounts.user(), PASSWORD)
    assert locked.status_code == 429 and "this address" in locked.text and "retry-after" in locked.headers


@pytest.fixture
def open_signup(web_db: Database) -> Iterator[Callable[[], None]]:
    before = get_setting(web_db, "signup")
    yield lambda: set_setting(web_db, "signup", "open")
    set_setting(web_db, "signup", before)


def test_signups_count_against_the_address(ui: RunningWeb, open_signup: Callable[[], None]) -> None:
    open_signup()
    tag = uuid.uuid4().hex[:6]
    for n in range(ADDRESS_FAILURES):
        made = form_post(ui, "/signup", username=f"mass-{tag}-{n}", password=PASSWORD, confirm=PASSWORD)
        assert made.status_code == 303, made.text
    refused = form_post(ui, "/signup", username=f"mass-{tag}-last", password=PASSWORD, confirm=PASSWORD)
    assert refused.status_code == 429 and "retry-after" in refused.headers


async def test_memory_counts_lapse_when_the_window_ends() -> None:
    now = [1000.0]
    limits = LoginLimits(MemoryCounter(clock=lambda: now[0]))
    for _ in range(ACCOUNT_FAILURES):
        await limits.failed("Alice", "10.0.0.1")
    with pytest.raises(RateLimited) as caught:
        await limits.check("alice", "10.0.0.2")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == str(int(WINDOW))
    now[0] += WINDOW - 1
    with pytest.raises(RateLimited) as caught:
        await limits.check("alice", "10.0.0.2")
    assert caught.value.headers["Retry-After"] == "1"
    now[0] += 1
    await limits.check("alice", "10.0.0.2")  # the window is over
    await limits.failed("alice", "10.0.0.2")
    assert (await limits.counter.failures("account:alice"))[0] == 1  # a fresh window starts at one


async def test_replicas_share_the_counts_through_redis(redis_prefix: str) -> None:
    settings = Settings(redis_url=REDIS_URL, redis_prefix=redis_prefix, redis_timeout=2.0)
    one, two = build_login_limits(settings), build_login_limits(settings)
    assert isinstance(one.counter, RedisCounter)
    try:
        for n in range(ACCOUNT_FAILURES):
            await (one if n % 2 else two).failed("bob", f"10.0.0.{n}")
        with pytest.raises(RateLimited) as caught:
            await one.check("bob", "10.0.1.1")
        assert WINDOW - 5 <= caught.value.retry_after <= WINDOW
        await two.succeeded("bob")
        await one.check("bob", "10.0.1.1")
    finally:
        await one.aclose()
        await two.aclose()


async def test_a_dead_redis_falls_back_to_counting_in_the_process() -> None:
    limits = build_login_limits(Settings(redis_url="redis://127.0.0.1:1/0", redis_timeout=0.2))
    try:
        for _ in range(ACCOUNT_FAILURES):
            await limits.failed("carol", "10.0.0.9")
        with pytest.raises(RateLimited):
            await limits.check("carol", "10.0.0.8")
    finally:
        await limits.aclose()


def test_behind_a_trusted_proxy_each_client_has_its_own_address_limit(ui: RunningWeb, accounts: Accounts) -> None:
    """Requests come from the proxy (127.0.0.1, trusted by default: EMBER_TRUSTED_PROXIES): the address limit
    counts the client X-Forwarded-For names, so one guesser behind the proxy does not lock everyone out."""
    def through_proxy(client_ip: str, name: str, password: str) -> httpx.Response:
        with httpx.Client(base_url=ui.url, headers={"x-forwarded-for": client_ip}) as client:
            found = re.search(r'name="form_token" value="([^"]+)"', client.get("/login").text)
            assert found
            return client.post("/login", data={"form_token": found.group(1), "username": name,
                                               "password": password})

    for n in range(ADDRESS_FAILURES):
        assert through_proxy("203.0.113.7", f"proxy-spray-{n}", "wrong-guess-123").status_code == 401
    assert through_proxy("203.0.113.7", accounts.user(), PASSWORD).status_code == 429
    assert through_proxy("198.51.100.20", accounts.user(), PASSWORD).status_code == 303


def test_ember_serve_believes_forwarded_headers_only_from_the_configured_proxies() -> None:
    from ember.cli.serve import _config

    config = _config(object(), "127.0.0.1", 8080, Settings(trusted_proxies="10.1.2.3"))
    assert config.proxy_headers and config.forwarded_allow_ips == "10.1.2.3"
    assert Settings.from_env({"EMBER_TRUSTED_PROXIES": "*"}).trusted_proxies == "*"


async def test_memory_forgets_finished_windows() -> None:
    from ember.web.login_limits import PRUNE_AT

    now = [0.0]
    counter = MemoryCounter(clock=lambda: now[0])
    for n in range(PRUNE_AT):
        await counter.add_failure(f"account:old-{n}")
    now[0] += WINDOW + 1  # all of those windows are over
    for n in range(2):
        await counter.add_failure(f"account:new-{n}")
    assert len(counter._windows) <= 2
    assert (await counter.failures("account:new-1"))[0] == 1
