"""Every call within its bound whatever the database does (issue 21, items 2 and 4), and
what a caller is told of each store failure (`errors.refusal`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from reset_mcp.app import App, build_app
from reset_mcp.bounds import SLACK_SECONDS, CallBounds
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings
from reset_mcp.errors import (
    STORE_BUSY,
    STORE_FULL,
    STORE_UNAVAILABLE,
    StoreBusyError,
    StoreError,
    StoreFullError,
    StoreTimeoutError,
    StoreUnavailableError,
    refusal,
)
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.store import Store, open_store
from reset_mcp.store.deadline import wait_budget
from tests.conftest import client_for, reset_args
from tests.httpserver import running_server


@pytest.mark.parametrize(
    ("error", "message", "retry_after"),
    [
        (StoreBusyError("another process held its write lock 5s"), STORE_BUSY, 2),
        (StoreFullError("the disk under the database is full (12 kB free)"), STORE_FULL, 60),
        (StoreTimeoutError("the database did not answer within this call's 10s"), STORE_UNAVAILABLE, 5),
        (StoreUnavailableError("no database connection within 5s"), STORE_UNAVAILABLE, 5),
        (StoreError("database error: disk I/O error at /var/lib/x.db"), STORE_UNAVAILABLE, 5),
    ],
)
def test_each_store_failure_has_its_own_answer_and_retry_after(
    error: StoreError, message: str, retry_after: int
) -> None:
    answer = refusal(error)
    assert (answer.status, answer.message, answer.headers) == (503, message, {"Retry-After": str(retry_after)})
    assert "/var/lib" not in answer.message  # the driver's text goes to the log only


def test_the_bound_is_the_database_wait_plus_the_send_wait_plus_slack(settings: Settings) -> None:
    bounds = CallBounds.of(settings)
    assert (bounds.store_seconds, bounds.send_wait) == (5.0, 3.0)
    assert bounds.total == 5.0 + 3.0 + SLACK_SECONDS == 10.0  # the README's figure


async def test_inside_the_bounds_every_store_wait_shares_one_deadline() -> None:
    with CallBounds(store_seconds=0.5, send_wait=0.1).applied():
        assert wait_budget(5.0) <= 0.5
        await anyio.sleep(0.2)
        assert wait_budget(5.0) <= 0.3
    assert wait_budget(5.0) == 5.0


class HangingStore:
    """A store whose writes hang, as a database that took the statement and never answered;
    reads (the API key check) still answer."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.hang = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        if self.hang:
            await anyio.sleep_forever()
        async with self._store.transaction() as tx:
            yield tx


@asynccontextmanager
async def hanging_app(settings: Settings) -> AsyncIterator[App]:
    real = await open_store(settings.effective_database_url)
    hanging = HangingStore(real)
    try:
        async with build_app(settings, store=hanging, backend=MemoryBackend(), clock=FakeClock()) as app:  # type: ignore[arg-type]
            hanging.hang = True
            yield app
    finally:
        hanging.hang = False
        await real.aclose()


async def test_a_tool_call_on_a_hung_database_ends_at_its_bound(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(db_pool_timeout_seconds=0.5, send_wait_seconds=0.2)
    async with hanging_app(settings) as app, client_for(app) as client:
        started = time.monotonic()
        with anyio.fail_after(10):
            result = await client.call_tool("request_password_reset", reset_args())
        took = time.monotonic() - started
    assert result.is_error and STORE_UNAVAILABLE in str(result.content)
    assert 0.5 + 0.2 + SLACK_SECONDS - 0.1 <= took < 0.5 + 0.2 + SLACK_SECONDS + 1.5


def test_a_rest_call_on_a_hung_database_ends_at_its_bound_with_503(settings_factory: Callable[..., Settings]) -> None:
    settings = settings_factory(db_pool_timeout_seconds=0.5, send_wait_seconds=0.2)
    with running_server(settings, {"page": ["redeem"]}, app_factory=hanging_app) as server:
        started = time.monotonic()
        response = httpx.post(
            f"{server.url}/v1/tokens/consume", json={"token": "x.y.z"}, headers=server.auth("page"), timeout=30
        )
        took = time.monotonic() - started
    assert (response.status_code, response.headers.get("retry-after")) == (503, "5")
    assert response.json() == {"error": STORE_UNAVAILABLE}
    assert took < 0.5 + 0.2 + SLACK_SECONDS + 1.5


class SlowStore(HangingStore):
    """The first write transaction after `slow` is set takes `slow` seconds, then commits."""

    slow = 0.0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        pause, self.slow = self.slow, 0.0
        async with self._store.transaction() as tx:
            yield tx
            await anyio.sleep(pause)


class StalledBackend(MemoryBackend):
    """Answers only once `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = anyio.Event()

    async def send(self, email: Any) -> Any:
        await self.release.wait()
        return await super().send(email)


async def test_a_call_slowed_by_the_database_waits_less_for_its_email(
    settings_factory: Callable[..., Settings],
) -> None:
    # Its reset committed late (4 s of a 6 s bound): it answers `queued` by the bound
    # rather than wait the full send wait and be cut with an error although its email goes.
    settings = settings_factory(db_pool_timeout_seconds=1, send_wait_seconds=3)
    real = await open_store(settings.effective_database_url)
    slow, backend = SlowStore(real), StalledBackend()
    try:
        async with build_app(settings, store=slow, backend=backend, clock=FakeClock()) as app:  # type: ignore[arg-type]
            async with client_for(app) as client:
                slow.slow = 4.0
                started = time.monotonic()
                result = await client.call_tool("request_password_reset", reset_args())
                took = time.monotonic() - started
            backend.release.set()
    finally:
        await real.aclose()
    assert not result.is_error, result.content
    assert result.structured_content["status"] == "queued"
    assert took < 1 + 3 + SLACK_SECONDS  # answered before the bound, not cut by it
