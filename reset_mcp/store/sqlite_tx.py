"""The SQLite driver under `SqlTx`, and the group of transactions one COMMIT makes durable.

Statements run on the event loop's thread (see `sqlite.py` for why); `SqliteTx` only
adapts sqlite3's cursor to the three calls `SqlTx` builds everything from.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import anyio

from reset_mcp.audit import AuditKey
from reset_mcp.errors import StoreError
from reset_mcp.store import sql_common as c
from reset_mcp.store.sql_tx import SqlTx


class SqliteTx(SqlTx):
    def __init__(self, conn: sqlite3.Connection, audit_key: AuditKey | None = None) -> None:
        # One cursor for the transaction's statements, not one per statement (`execute` on
        # the connection makes and drops a cursor each time). Each call runs its statement
        # to the end (DML) or reads every row, so the cursor holds nothing in progress.
        self._cursor = conn.cursor()
        self.audit_key = audit_key

    async def _exec(self, sql: str, args: Sequence[Any] = ()) -> int:
        cursor = self._cursor
        cursor.execute(sql, tuple(args))
        return cursor.rowcount

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> c.Row | None:
        cursor = self._cursor
        cursor.execute(sql, tuple(args))
        row = cursor.fetchone()
        # Drain so an UPDATE ... RETURNING finishes its write before commit.
        cursor.fetchall()
        return row  # type: ignore[no-any-return]

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[c.Row]:
        cursor = self._cursor
        cursor.execute(sql, tuple(args))
        return cursor.fetchall()


class Group:
    """Transactions committed together (see `SqliteStore.transaction`)."""

    __slots__ = ("done", "error", "head")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: StoreError | None = None
        self.head: tuple[int, str] | None = None  # the newest audit entry its bodies appended
