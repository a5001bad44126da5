"""The embedded store: one SQLite file in WAL mode, through aiosqlite.

One connection serves the process; an anyio lock makes each `transaction()` exclusive
within the process, and `BEGIN IMMEDIATE` takes SQLite's write lock up front so another
process (the CLI approving on the same file) waits on `busy_timeout` instead of failing
half-way. WAL keeps readers and the single writer out of each other's way.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from reset_mcp.errors import StoreError
from reset_mcp.store import sql_common as c
from reset_mcp.store.schema import MIGRATIONS, MIGRATIONS_TABLE, statements
from reset_mcp.store.sql_tx import SqlTx


class _SqliteTx(SqlTx):
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def _exec(self, sql: str, args: Sequence[Any] = ()) -> int:
        cursor = await self._conn.execute(sql, tuple(args))
        count = cursor.rowcount
        await cursor.close()
        return count

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> c.Row | None:
        cursor = await self._conn.execute(sql, tuple(args))
        row = await cursor.fetchone()
        # Drain so an UPDATE ... RETURNING finishes its write before commit.
        await cursor.fetchall()
        await cursor.close()
        return row

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[c.Row]:
        cursor = await self._conn.execute(sql, tuple(args))
        rows = await cursor.fetchall()
        await cursor.close()
        return list(rows)


class SqliteStore:
    def __init__(self, conn: aiosqlite.Connection, display: str) -> None:
        self._conn = conn
        self._lock = anyio.Lock()
        self.url_for_display = display

    @classmethod
    async def open(cls, url: str) -> SqliteStore:
        path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
        if path in ("", ":memory:"):
            path = ":memory:"
        else:
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at open
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            conn = await aiosqlite.connect(path, isolation_level=None)
            conn.row_factory = sqlite3.Row
            for pragma in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=NORMAL",  # durable across process crashes in WAL mode
                "PRAGMA busy_timeout=5000",
                "PRAGMA foreign_keys=ON",
            ):
                await conn.execute(pragma)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite database at {path}: {exc}") from exc
        return cls(conn, f"sqlite:///{path}")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTx]:
        async with self._lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"database is unavailable: {exc}") from exc
            try:
                yield _SqliteTx(self._conn)
            except BaseException as exc:
                await self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"database error: {exc}") from exc
                raise
            try:
                await self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._conn.execute("ROLLBACK")
                raise StoreError(f"commit failed: {exc}") from exc

    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self.transaction() as tx:
            assert isinstance(tx, _SqliteTx)
            await tx._exec(MIGRATIONS_TABLE)
            done = {r["version"] for r in await tx._all("SELECT version FROM schema_migrations")}
            for version, name, stmts in MIGRATIONS:
                if version in done:
                    continue
                for stmt in statements(stmts, "INTEGER PRIMARY KEY AUTOINCREMENT"):
                    await tx._exec(stmt)
                await tx._exec(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?,?,?)",
                    (version, name, time.time()),
                )
                applied.append(f"{version}: {name}")
        return applied

    async def ping(self) -> None:
        try:
            await self._conn.execute("SELECT 1")
        except sqlite3.Error as exc:
            raise StoreError(f"database is unavailable: {exc}") from exc

    async def aclose(self) -> None:
        await self._conn.close()
