"""The SQL directory on SQLite: a read-only connection per lookup, in a worker thread.

The app's database file is not ours: its queries may be slower than our store's, so a
lookup runs off the event loop. Each lookup opens the file `mode=ro` (SQLite itself
refuses any write), sets `query_only`, installs an authorizer that allows reading and
nothing else (checked when SQLite prepares the statement), runs in `BEGIN`..`ROLLBACK`,
and is interrupted by a progress handler at its deadline, since a thread cannot be
cancelled. A connection per lookup costs well under a millisecond and never holds the
file open between lookups, so the app can replace it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.to_thread

from reset_mcp.directory.account import Account, check_account
from reset_mcp.directory.sql import PARAM, SQL_VAR, URL_VAR, check_columns, driver_error, one_account
from reset_mcp.errors import ConfigError, DirectoryUnavailableError

# What a SELECT needs: the statement itself, reading columns, calling functions, a
# recursive CTE, and the BEGIN / ROLLBACK around it. Everything else is refused.
_ALLOWED = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_TRANSACTION}
    | {getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
)
PROGRESS_STEPS = 1000  # VM instructions between deadline checks (microseconds apart)


def _authorize(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED else sqlite3.SQLITE_DENY


def _deadline_handler(deadline: float) -> Callable[[], int]:
    return lambda: int(time.monotonic() > deadline)


class SqliteDirectory:
    def __init__(self, path: Path, sql: str, timeout: float) -> None:
        self._path = path
        self._uri = f"file:{quote(str(path))}?mode=ro"
        self._sql = sql
        self._timeout = timeout
        self.describe = f"sql directory sqlite:///{path}"

    @classmethod
    async def open(cls, sql: str, url: str, *, lookup_timeout: float) -> SqliteDirectory:
        timeout = lookup_timeout
        path = Path(url.removeprefix("sqlite:///"))
        if not await anyio.to_thread.run_sync(path.is_file):
            raise ConfigError(f"{URL_VAR}: no database file at {path}")
        directory = cls(path, sql, timeout)
        try:
            columns, _ = await anyio.to_thread.run_sync(directory._run, None)
        except sqlite3.DatabaseError as exc:
            # At start every refusal is about the query or the file, not a passing outage.
            if "not authorized" in str(exc):
                raise ConfigError(f"{SQL_VAR} must only read: SQLite refused it ({exc})") from None
            raise ConfigError(f"{SQL_VAR} does not run on {path}: {exc}") from None
        check_columns(columns)
        return directory

    def _run(self, account: str | None) -> tuple[list[str], list[dict[str, Any]]]:
        deadline = time.monotonic() + self._timeout
        conn = sqlite3.connect(self._uri, uri=True, timeout=self._timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.set_authorizer(_authorize)
            conn.set_progress_handler(_deadline_handler(deadline), PROGRESS_STEPS)
            conn.execute("BEGIN")
            try:
                cursor = conn.execute(self._sql, {PARAM: account})
                columns = [d[0] for d in cursor.description or ()]
                rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchmany(2)]
            finally:
                # An interrupt has already rolled back; a second ROLLBACK would hide why.
                conn.set_progress_handler(None, 0)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return columns, rows
        finally:
            conn.close()

    async def lookup(self, account: str) -> Account | None:
        account = check_account(account)
        start = time.monotonic()
        try:
            _, rows = await anyio.to_thread.run_sync(self._run, account)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc) and time.monotonic() - start >= self._timeout:
                raise DirectoryUnavailableError(
                    f"account directory unavailable: no answer within {self._timeout:g} seconds"
                ) from None
            raise driver_error(exc) from exc
        except sqlite3.Error as exc:
            raise driver_error(exc) from exc
        return one_account(rows)

    async def aclose(self) -> None:
        """Nothing is held between lookups."""
