"""The store for many instances: one PostgreSQL database, through an asyncpg pool.

Every instance points at the same database. Transactions run at READ COMMITTED: each
race-sensitive write is a conditional UPDATE whose row count decides the winner, due
outbox rows are claimed with `FOR UPDATE SKIP LOCKED` (so claimers get disjoint rows),
audit appends take a transaction-level advisory lock (so the hash chain never forks),
and `lock(key)` is an advisory lock on the key's hash. Migrations run under a
session-level advisory lock, so two instances starting at once apply each version once.

A connection is awaited at most `pool_timeout` seconds; then `StoreUnavailableError`
says the pool is exhausted, rather than the caller hanging. Driver errors are wrapped in
`StoreError`; messages never carry the URL's password. Outbox leases and due times are
kept by the database's clock (`statement_timestamp()`, see `sql_outbox`), so instances
whose clocks differ or step agree on when a lease ends and a retry is due. A `search_path` can be set in the
URL: `postgresql://host/db?options=-csearch_path%3Dmyschema`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import asyncpg

from reset_mcp.audit import AuditKey
from reset_mcp.audit_anchor import AuditAnchor
from reset_mcp.errors import StoreError, StoreFullError, StoreUnavailableError
from reset_mcp.store import sql_common as c
from reset_mcp.store.deadline import wait_budget
from reset_mcp.store.health import WriteHealth
from reset_mcp.store.schema import MIGRATIONS, MIGRATIONS_TABLE, statements
from reset_mcp.store.sql_tx import SqlTx
from reset_mcp.store.urls import hide_url_secrets, url_for_display

__all__ = ["PostgresStore", "rowcount", "to_pg", "url_for_display"]

log = logging.getLogger("reset_mcp.store")

# Advisory lock keys (any constant bigints; "rmcp" + a purpose byte).
MIGRATE_LOCK = 0x726D637001
AUDIT_LOCK = 0x726D637002
DRIVER_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
CLOSE_TIMEOUT = 10.0
# "database": outbox leases and due times by the server's clock (instances' clocks may
# differ); "caller": as the callers' `now` gives them (tests driving a fake clock).
Clock = Literal["database", "caller"]
# SQLSTATE classes (and codes) that say the database itself is failing, not the statement:
# connection, insufficient resources (disk full), operator intervention, system error,
# internal error; and a read-only transaction (a failover left us on a replica).
_FAILING = frozenset({"08", "53", "57", "58", "XX"})
_READ_ONLY = "25006"


@functools.lru_cache(maxsize=2048)
def to_pg(sql: str) -> str:
    """`?` placeholders to `$1..$n`, leaving quoted text alone (cached per statement)."""
    out: list[str] = []
    n = 0
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


def rowcount(status: str) -> int:
    """The row count of an asyncpg status string: "UPDATE 3" -> 3, "INSERT 0 1" -> 1."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else 0


def _wrap(exc: BaseException, what: str = "database error") -> StoreError:
    # Only the server's primary message: DETAIL lines may quote row values (the driver
    # error, with everything, stays the `__cause__` for the logs).
    text = getattr(exc, "message", None) if isinstance(exc, asyncpg.PostgresError) else None
    if isinstance(exc, asyncpg.exceptions.DiskFullError):
        return StoreFullError(f"the disk under the database is full: {text or exc}")
    return StoreError(f"{what}: {type(exc).__name__}: {text or exc}")


def _failing(exc: BaseException) -> bool:
    """The database (or the link to it) is failing, rather than this statement."""
    if not isinstance(exc, asyncpg.PostgresError):
        return True  # the connection was lost (InterfaceError, OSError)
    state = getattr(exc, "sqlstate", None) or ""
    return state[:2] in _FAILING or state == _READ_ONLY


class _PgTx(SqlTx):
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(
        self,
        conn: asyncpg.Connection,
        audit_key: AuditKey | None = None,
        *,
        db_clock: bool = True,
        health: WriteHealth | None = None,
    ) -> None:
        self._conn = conn
        self.audit_key = audit_key
        self.db_clock = db_clock
        self._health = health
        self.wrote = False  # a statement changed rows: its commit shows writes work

    def _error(self, exc: BaseException) -> StoreError:
        error = _wrap(exc)
        if self._health is not None and _failing(exc):
            self._health.failed(error)
        return error

    async def _exec(self, sql: str, args: Sequence[Any] = ()) -> int:
        try:
            status = await self._conn.execute(to_pg(sql), *args)
        except DRIVER_ERRORS as exc:
            raise self._error(exc) from exc
        count = rowcount(status)
        self.wrote = self.wrote or count > 0
        return count

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> c.Row | None:
        try:
            return await self._conn.fetchrow(to_pg(sql), *args)  # type: ignore[no-any-return]
        except DRIVER_ERRORS as exc:
            raise self._error(exc) from exc

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[c.Row]:
        try:
            return list(await self._conn.fetch(to_pg(sql), *args))
        except DRIVER_ERRORS as exc:
            raise self._error(exc) from exc

    async def _lock_audit(self) -> None:
        # Held until commit: the next appender reads the last hash only after this one lands.
        await self._exec(f"SELECT pg_advisory_xact_lock({AUDIT_LOCK})")

    async def lock(self, key: str) -> None:
        await self._exec("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (key,))


class PostgresStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        display: str,
        pool_size: int,
        pool_timeout: float,
        *,
        audit_key: AuditKey | None = None,
        anchor: AuditAnchor | None = None,
        clock: Clock = "database",
    ) -> None:
        self._pool = pool
        self.url_for_display = display
        self.pool_size = pool_size
        self.pool_timeout = pool_timeout
        self.audit_key = audit_key
        self.anchor = anchor
        self.db_clock = clock == "database"
        self.health = WriteHealth()  # for /healthz: writes failing for the database's own reasons

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout: float = 5.0,
        audit_key: AuditKey | None = None,
        anchor: AuditAnchor | None = None,
        clock: Clock = "database",
    ) -> PostgresStore:
        display = url_for_display(url)
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size, timeout=pool_timeout)
        except (TimeoutError, OSError) as exc:
            msg = f"cannot reach PostgreSQL at {display} within {pool_timeout:g}s: {type(exc).__name__}: {exc}"
            raise StoreUnavailableError(hide_url_secrets(msg, url)) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            # The driver's own text may quote the URL it could not parse.
            wrapped = _wrap(exc, f"cannot open PostgreSQL database at {display}")
            raise StoreError(hide_url_secrets(str(wrapped), url)) from exc
        return cls(pool, display, pool_size, pool_timeout, audit_key=audit_key, anchor=anchor, clock=clock)

    async def _acquire(self) -> asyncpg.Connection:
        timeout = wait_budget(self.pool_timeout)  # the call's deadline may come first
        if timeout <= 0:
            raise StoreUnavailableError("no database connection before this call's deadline")
        try:
            return await self._pool.acquire(timeout=timeout)
        except TimeoutError as exc:
            raise self.health.failed(
                StoreUnavailableError(
                    f"no database connection within {timeout:g}s (pool of {self.pool_size} exhausted)"
                )
            ) from exc
        except DRIVER_ERRORS as exc:
            raise self.health.failed(_wrap(exc, f"cannot connect to {self.url_for_display}")) from exc

    async def _release(self, conn: asyncpg.Connection) -> None:
        try:
            await self._pool.release(conn)
        except DRIVER_ERRORS as exc:  # the pool terminated the broken connection; a new one replaces it
            log.warning("dropped a broken database connection: %s", exc)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTx]:
        conn = await self._acquire()
        try:
            tx = _PgTx(conn, self.audit_key, db_clock=self.db_clock, health=self.health)
            try:
                async with conn.transaction():
                    yield tx
            except DRIVER_ERRORS as exc:  # BEGIN, COMMIT or ROLLBACK failed
                raise self.health.failed(_wrap(exc, "transaction failed")) from exc
            # Committed (an error above skips this): the chain's new head may be anchored.
            if tx.audit_head is not None and self.anchor is not None:
                self.anchor.record(*tx.audit_head)
            if tx.wrote:
                self.health.committed()
        finally:
            await self._release(conn)

    def write_problem(self) -> str | None:
        return self.health.problem()  # for /healthz (store/health.py)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[SqlTx]:
        conn = await self._acquire()
        try:
            try:
                async with conn.transaction(readonly=True):
                    yield _PgTx(conn, db_clock=self.db_clock)
            except DRIVER_ERRORS as exc:
                raise _wrap(exc, "read failed") from exc
        finally:
            await self._release(conn)

    async def migrate(self) -> list[str]:
        applied: list[str] = []
        conn = await self._acquire()
        try:
            # Session-level: held across the per-version transactions; a second instance
            # waits here, then finds every version applied. The pool's reset on release
            # unlocks it even if we are cancelled before the explicit unlock.
            await conn.execute(f"SELECT pg_advisory_lock({MIGRATE_LOCK})")
            try:
                await conn.execute(MIGRATIONS_TABLE)
                done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                for version, name, stmts in MIGRATIONS:
                    if version in done:
                        continue
                    log.info("applying schema migration %d: %s", version, name)
                    async with conn.transaction():
                        for stmt in statements(stmts, "BIGSERIAL PRIMARY KEY", "postgres"):
                            await conn.execute(stmt)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                            version,
                            name,
                            time.time(),
                        )
                    applied.append(f"{version}: {name}")
            finally:
                await conn.execute(f"SELECT pg_advisory_unlock({MIGRATE_LOCK})")
        except DRIVER_ERRORS as exc:
            raise _wrap(exc, "migration failed") from exc
        finally:
            await self._release(conn)
        return applied

    async def ping(self) -> None:
        async with self.transaction() as tx:
            await tx._one("SELECT 1 AS ok")

    async def aclose(self) -> None:
        if self.anchor is not None:
            self.anchor.close()
        try:
            await asyncio.wait_for(self._pool.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("database connections still busy after %gs; closing them", CLOSE_TIMEOUT)
            self._pool.terminate()
        except DRIVER_ERRORS as exc:
            log.warning("closing the database pool: %s", exc)
