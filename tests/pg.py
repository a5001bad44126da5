"""A throw-away PostgreSQL database for tests (a helper module, not a conftest).

`pg_database_fixture()` makes a session fixture that creates `reset_mcp_test_<random>`
on 127.0.0.1:5432 as user `postgres` (trust auth), yields its URL and drops it at the
end. With no server reachable the tests skip with the reason, unless
`RESET_MCP_REQUIRE_POSTGRES=1` (CI), where they fail instead.

    from tests.pg import pg_database_fixture, fresh_schema_url
    pg_url = pg_database_fixture()          # in a test module: one database per run

`fresh_schema_url(url)` adds a new empty schema to that database and returns a URL
whose `search_path` is that schema, so each test can start from nothing cheaply.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"
ADMIN_URL = f"postgresql://{USER}@{HOST}:{PORT}/postgres"
REQUIRE_ENV = "RESET_MCP_REQUIRE_POSTGRES"


def db_url(name: str) -> str:
    return f"postgresql://{USER}@{HOST}:{PORT}/{name}"


def with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


async def _admin(sql: str, url: str | None = None) -> None:
    import asyncpg

    conn = await asyncpg.connect(url or ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _run(coro: Any) -> Any:
    # Each call uses its own short-lived loop (in a thread when a test's loop is already
    # running), so these helpers work from sync fixtures and async tests alike.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def unavailable(reason: str) -> None:
    """Skip (or fail under RESET_MCP_REQUIRE_POSTGRES=1) with a clear reason."""
    msg = f"PostgreSQL not reachable at {HOST}:{PORT}: {reason}"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{msg} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(msg)


def create_database() -> str:
    name = f"reset_mcp_test_{secrets.token_hex(6)}"
    try:
        _run(_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # asyncpg error, OSError, timeout: all mean "no usable server"
        unavailable(f"{type(exc).__name__}: {exc}")
    return db_url(name)


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1].split("?", 1)[0]
    _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def fresh_schema_url(url: str) -> str:
    """A new empty schema in the test database; the URL selects it via search_path."""
    schema = f"t_{secrets.token_hex(6)}"
    _run(_admin(f'CREATE SCHEMA "{schema}"', url))
    return with_search_path(url, schema)


def pg_database_fixture(name: str = "pg_url", scope: str = "session") -> Callable[..., Iterator[str]]:
    """A fixture (named `name`) yielding the URL of a fresh database, dropped afterwards."""

    @pytest.fixture(scope=scope, name=name)  # type: ignore[call-overload]
    def _database() -> Iterator[str]:
        url = create_database()
        try:
            yield url
        finally:
            drop_database(url)

    return _database  # type: ignore[no-any-return]
