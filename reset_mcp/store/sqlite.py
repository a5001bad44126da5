"""The embedded store: one SQLite file in WAL mode.

One connection serves the process; an anyio lock runs the transactions' bodies one at
a time, concurrent ones share a COMMIT (group commit, see `transaction`), and
`BEGIN IMMEDIATE` takes SQLite's write lock up front so another process (the CLI
approving on the same file) waits instead of failing half-way. WAL keeps readers and
the single writer out of each other's way.

Statements run on the event loop's thread, not in a worker thread: each one is far cheaper
on a local file than a hand-off to a thread and back (what aiosqlite does for every execute,
fetch and close; bench/README.md's floor row compares them), and a reset runs about twenty
statements. What could block the loop for long is waiting for another process's write lock,
so that wait happens here, in `BEGIN IMMEDIATE` retried with `anyio.sleep` (`sqlite_lock`),
with the in-process lock released so reads never queue behind it, until the call's deadline
(`StoreBusyError`, noted for /healthz). Outbox leases and due times are the callers' `now`:
one file, one host, one clock. Commits in WAL mode with `synchronous=NORMAL` do not fsync;
checkpoints do (copying the WAL back into the database file, then an fsync; `sqlite_space`
on a full disk). SQLite's default runs one inside the commit that crosses 1,000 WAL pages;
`WAL_AUTOCHECKPOINT` makes that ten times rarer, and since a checkpoint copies each page
once however often it was rewritten (the same index pages, every reset), the copying shrinks
too. The checkpoint stays inside a commit on purpose: one run from another thread while this
connection keeps writing never catches up, so the WAL never restarts and grows without
bound. `journal_size_limit` trims the file after a restart.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.lowlevel

from reset_mcp.audit import AuditKey
from reset_mcp.audit_anchor import AuditAnchor
from reset_mcp.errors import StoreError
from reset_mcp.private import private_database
from reset_mcp.store.deadline import wait_budget
from reset_mcp.store.schema import MIGRATIONS, MIGRATIONS_TABLE, statements
from reset_mcp.store.sql_tx import SqlTx
from reset_mcp.store.sqlite_lock import begin_immediate
from reset_mcp.store.sqlite_space import SpaceWatch
from reset_mcp.store.sqlite_tx import Group, SqliteTx

LOCK_WAIT_SECONDS = 5.0  # how long a transaction waits for another process's write lock (or the call's deadline)
BUSY_TIMEOUT_MS = 20  # SQLite's own (blocking) wait, for the rare busy moment inside a transaction
WAL_AUTOCHECKPOINT = 10_000  # pages (4 kB): checkpoint about every 40 MB of WAL, not every 4 MB
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes kept of the WAL file after a checkpoint restarts it
log = logging.getLogger("reset_mcp.store")


class SqliteStore:
    def __init__(
        self,
        conn: sqlite3.Connection,
        display: str,
        path: str = ":memory:",
        *,
        audit_key: AuditKey | None = None,
        anchor: AuditAnchor | None = None,
    ) -> None:
        self._conn = conn
        self._space = SpaceWatch(conn, path)  # disk full: said as such, and checkpointed out of
        # fast_acquire: a free lock is taken without yielding to the loop while holding it
        # (a loop iteration per take, four a reset, that let no one in: the others queue on
        # the held lock). Groups still form: the leader yields before its COMMIT.
        self._lock = anyio.Lock(fast_acquire=True)
        self._group: Group | None = None  # the transaction group open now, if any
        self._polling = 0  # tasks waiting for another process's write lock
        self.url_for_display = display
        self.audit_key = audit_key
        self.anchor = anchor

    @classmethod
    async def open(
        cls, url: str, *, audit_key: AuditKey | None = None, anchor: AuditAnchor | None = None
    ) -> SqliteStore:
        path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
        if path in ("", ":memory:"):
            path = ":memory:"
        try:
            if path != ":memory:":
                private_database(Path(path).expanduser())  # noqa: ASYNC240 - once, at open
            # isolation_level=None: we issue BEGIN/COMMIT ourselves. The connection is used
            # by one task at a time (the lock), whichever thread runs this store's loop.
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            for pragma in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=NORMAL",  # durable across process crashes in WAL mode
                f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
                "PRAGMA foreign_keys=ON",
                "PRAGMA temp_store=MEMORY",  # savepoint journals in memory, not temp files
                f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}",
                f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}",
            ):
                conn.execute(pragma)
            store = cls(conn, f"sqlite:///{path}", path, audit_key=audit_key, anchor=anchor)
            store._space.at_open()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite database at {path}: {exc}") from exc
        return store

    async def _open(self) -> bool:
        """Take the in-process lock with a transaction group open: join the open group
        (False) or begin one, as its leader (True). Another process's write lock is waited
        for with the in-process lock released, so reads and the rest go on meanwhile; the
        wait ends at `LOCK_WAIT_SECONDS` or the call's `deadline`, with `StoreBusyError`."""
        limit = wait_budget(LOCK_WAIT_SECONDS)
        deadline, delay = time.monotonic() + limit, 0.001
        blocking = self._polling == 0  # others polling: the lock is known to be held elsewhere
        self._polling += 1
        try:
            while True:
                await self._lock.acquire()
                if self._group is not None:
                    return False
                try:
                    began = begin_immediate(self._conn, blocking=blocking, busy_timeout_ms=BUSY_TIMEOUT_MS)
                except BaseException as exc:
                    self._lock.release()
                    if isinstance(exc, sqlite3.Error):
                        raise self._space.error(exc, "database is unavailable") from exc
                    raise
                if began:
                    self._group = Group()
                    return True
                self._lock.release()
                if time.monotonic() >= deadline:
                    raise self._space.busy(limit)
                blocking = False
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.05)
        finally:
            self._polling -= 1

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTx]:
        """One atomic unit of work, durable (committed) when the block exits.

        Group commit. A COMMIT writes every page the transaction dirtied to the WAL, two
        `pwrite`s a page, a large share of a reset's CPU under load (bench/README.md).
        Concurrent transactions dirty mostly the same pages (the tail of each table and
        index), so the first transaction of a group, its leader, after running its own
        body lets the tasks that are ready run theirs (one loop iteration) inside the
        same SQLite transaction, each body under its own SAVEPOINT, then commits them all
        at once. Every caller still returns only after the COMMIT that made its work
        durable (so an email never leaves before its row is committed); a body that
        raises rolls back to its savepoint and leaves the other bodies' work alone; a
        failed COMMIT fails every member. Alone, a transaction costs one loop iteration
        more than a plain BEGIN/COMMIT. Bodies run one at a time (the lock), in the order they commit.
        """
        leader = await self._open()  # holds self._lock from here
        group = self._group
        assert group is not None
        try:
            failure: BaseException | None = None
            changes = self._conn.total_changes
            self._conn.execute("SAVEPOINT body")
            tx = SqliteTx(self._conn, self.audit_key)
            try:
                yield tx
            except BaseException as exc:
                failure = exc
            self._end_body(group, failure is not None)
            if failure is None and tx.audit_head is not None:
                group.head = tx.audit_head  # bodies run in order: the last one's is the newest
            if leader and self._conn.total_changes == changes:
                # A read (an API key check, a status query): nothing to share a commit
                # for, so it ends at once, and no one has joined yet.
                self._commit(group)
        finally:
            self._lock.release()
        if not group.done.is_set():
            # Shielded: the other members wait on this commit, and a member's work is in
            # it whatever happens to the member's own task meanwhile.
            with anyio.CancelScope(shield=True):
                if leader:
                    await anyio.lowlevel.checkpoint()  # the ready tasks run their bodies into this group
                    async with self._lock:
                        self._commit(group)
                else:
                    await group.done.wait()
        if failure is not None:
            if isinstance(failure, sqlite3.Error):
                raise self._space.error(failure, "database error") from failure
            raise failure
        if group.error is not None:
            raise group.error

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[SqlTx]:
        """A read transaction (deferred BEGIN): in WAL mode it takes no write lock, so it
        never waits for another process's writer. A write inside is rolled back and refused
        (checked by the change count, which is cheaper than `PRAGMA query_only`)."""
        # The one yield a read made in the lock's slow path, kept (without holding the lock):
        # a loop of reads (the audit chain's pages) still lets other tasks in between.
        await anyio.lowlevel.checkpoint()
        while True:
            # An open group has written what it has not committed yet: read after it.
            if self._group is not None:
                await self._group.done.wait()
                continue
            await self._lock.acquire()
            if self._group is None:  # and none can open while this holds the lock
                break
            self._lock.release()
        try:
            self._conn.execute("BEGIN DEFERRED")
            changes = self._conn.total_changes
            try:
                yield SqliteTx(self._conn)
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise StoreError(f"database error: {exc}") from exc
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            if self._conn.total_changes != changes:
                # A bug, not a race: the caller wrote inside a read. None of it stays.
                self._conn.execute("ROLLBACK")
                raise StoreError("a write inside a read-only transaction was rolled back")
            self._conn.execute("COMMIT")  # ends the read; nothing to write
        except sqlite3.Error as exc:
            raise StoreError(f"database is unavailable: {exc}") from exc
        finally:
            self._lock.release()

    def _end_body(self, group: Group, failed: bool) -> None:
        try:
            if failed:
                self._conn.execute("ROLLBACK TO body")
            self._conn.execute("RELEASE body")
        except sqlite3.Error as exc:
            # SQLite itself rolled the whole transaction back (disk full, I/O error, ...):
            # the group's earlier bodies are lost with it, so all of them fail.
            group.error = self._space.error(exc, "database error")
            group.error.__cause__ = exc

    def _commit(self, group: Group) -> None:
        self._group = None
        if group.error is None:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                group.error = self._space.error(exc, "commit failed")
                group.error.__cause__ = exc
            else:
                if group.head is not None and self.anchor is not None:
                    self.anchor.record(*group.head)
        if group.error is not None and self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        group.done.set()
        self._space.after_commit(group.error is None)  # no transaction open here: a checkpoint may run

    async def migrate(self) -> list[str]:
        applied: list[str] = []
        async with self.transaction() as tx:
            assert isinstance(tx, SqliteTx)
            await tx._exec(MIGRATIONS_TABLE)
            done = {r["version"] for r in await tx._all("SELECT version FROM schema_migrations")}
            for version, name, stmts in MIGRATIONS:
                if version in done:
                    continue
                # Said before it runs: one that rebuilds a table takes a while on a big file.
                log.info("applying schema migration %d: %s", version, name)
                for stmt in statements(stmts, "INTEGER PRIMARY KEY AUTOINCREMENT", "sqlite"):
                    await tx._exec(stmt)
                await tx._exec(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?,?,?)",
                    (version, name, time.time()),
                )
                applied.append(f"{version}: {name}")
        return applied

    def write_problem(self) -> str | None:
        return self._space.problem()  # busy, full, failing (store/health.py), for /healthz

    async def ping(self) -> None:
        try:
            self._conn.execute("SELECT 1").close()
        except sqlite3.Error as exc:
            raise StoreError(f"database is unavailable: {exc}") from exc

    async def aclose(self) -> None:
        self._conn.close()  # the last connection to close checkpoints what is left
        if self.anchor is not None:
            self.anchor.close()
