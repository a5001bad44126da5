"""Two app instances on one PostgreSQL database, racing in one process: the rate limit is
shared and holds under concurrency, and interleaved flows never deadlock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest
from pg import fresh_schema_url, pg_database_fixture

from reset_mcp.app import App, build_app
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.memory import MemoryBackend
from tests.conftest import CHROME_UA, token_from

pytestmark = pytest.mark.postgres
pg_url = pg_database_fixture("pg_url")


@pytest.fixture
async def two_apps(pg_url: str, settings_factory: Callable[..., Any]) -> AsyncIterator[tuple[App, App]]:
    url = fresh_schema_url(pg_url)
    async with AsyncExitStack() as stack:
        apps = []
        for _ in range(2):
            settings = settings_factory(database_url=url, db_pool_size=8)
            apps.append(await stack.enter_async_context(build_app(settings, backend=MemoryBackend())))
        yield apps[0], apps[1]


def _inp(i: int, email: str = "alice@example.com", user_id: str = "u-1") -> ResetInput:
    return ResetInput(email, user_id, f"198.51.100.{i % 200 + 1}", CHROME_UA)


async def test_shared_rate_limit_holds_under_concurrency(two_apps: tuple[App, App]) -> None:
    statuses: list[str] = []

    async def request(app: App, i: int) -> None:
        statuses.append((await app.service.request_password_reset(_inp(i))).status)

    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(request, two_apps[i % 2], i)
    assert sorted(statuses).count("sent") == 5, statuses
    assert statuses.count("rate_limited") == 7


async def test_requests_and_consumes_interleave_without_deadlock(two_apps: tuple[App, App]) -> None:
    a, b = two_apps
    backend = a.backend
    assert isinstance(backend, MemoryBackend)
    for round_ in range(4):
        user = f"u-{round_}"
        email = f"user{round_}@example.com"
        await a.service.request_password_reset(_inp(round_, email, user))
        token = token_from(backend.sent[-1])
        results: list[object] = []

        async def consume(token: str, results: list[object]) -> None:
            results.append(await b.service.consume_reset_token(token))

        async def request(inp: ResetInput, results: list[object]) -> None:
            results.append(await a.service.request_password_reset(inp))

        async with anyio.create_task_group() as tg:  # a StoreError (deadlock) would fail the group
            tg.start_soon(consume, token, results)
            tg.start_soon(request, _inp(round_ + 50, email, user), results)
        assert len(results) == 2
