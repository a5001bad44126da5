"""Disk space for the SQLite store: say "disk full" as such, and get out of it by itself.

In WAL mode every commit appends to the `-wal` file; only a checkpoint copies its pages
into the database file and lets the WAL start again. `SqliteStore` checkpoints about every
40 MB of WAL (see its docstring), so on a volume with less free space than that the WAL
fills the disk first, and then nothing ever checkpoints: freeing some space only lets
the WAL grow into it. So:

- a write that fails for lack of space raises `StoreFullError`, and a checkpoint
  (TRUNCATE: the WAL shrinks to nothing) is tried straight after, and again after each
  commit until one succeeds;
- while the volume has less than `LOW_SPACE_BYTES` free, the WAL is checkpointed every
  `CHECK_EVERY_BYTES` of growth, so it never eats the last space;
- at open, a large WAL on a low volume (left by a process killed on a full disk) is
  checkpointed before the first write.

Each commit costs one `stat` of the WAL file; `statvfs` runs once per `CHECK_EVERY_BYTES`.
"""

from __future__ import annotations

import logging
import os
import sqlite3

from reset_mcp.errors import StoreBusyError, StoreError, StoreFullError
from reset_mcp.store.health import FULL, WriteHealth

# Primary result codes that say the store itself is failing, not the statement.
HEALTH_CODES = frozenset(
    {sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY}
    | {sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PROTOCOL}
)
LOW_SPACE_BYTES = 96 * 1024 * 1024  # below this much free space, keep the WAL short
CHECK_EVERY_BYTES = 1024 * 1024  # WAL growth between two looks at the free space

log = logging.getLogger("reset_mcp.store")


def is_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    return False


class SpaceWatch:
    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self._dir = os.path.dirname(os.path.abspath(path)) if path != ":memory:" else None
        self._wal = f"{path}-wal" if self._dir else None
        self._checked_at = 0  # WAL size when the free space was last looked at
        self.full = False  # a write failed for lack of space; no checkpoint has succeeded since
        self.health = WriteHealth()  # for /healthz: writes failing for the store's own reasons

    def free_bytes(self) -> int | None:
        if self._dir is None:
            return None
        try:
            st = os.statvfs(self._dir)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    def error(self, exc: sqlite3.Error, what: str) -> StoreError:
        """The store error for a failed statement or commit: `StoreFullError` for no space.
        A failure of the store's own (I/O, busy, read-only, ...) is noted for /healthz; a
        constraint a caller broke is not."""
        if not is_full(exc):
            error = StoreError(f"{what}: {exc}")
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code
            return self.health.failed(error) if code in HEALTH_CODES else error
        self.full = True
        free = self.free_bytes()
        shown = f" ({free // 1024} kB free)" if free is not None else ""
        log.error("SQLite: the disk is full%s; nothing can be written until space is freed", shown)
        return self.health.failed(
            StoreFullError(f"the disk under the database is full{shown}; writes resume once space is freed")
        )

    def busy(self, waited: float) -> StoreBusyError:
        """Another process held the write lock past this write's deadline."""
        error = StoreBusyError(f"the database is busy: another process held its write lock {waited:g}s")
        self.health.failed(error)
        return error

    def problem(self) -> str | None:
        """Why writes are failing now (`WriteHealth`), or None."""
        return FULL if self.full else self.health.problem()

    def after_commit(self, committed: bool = True) -> None:
        """Run with no transaction open (after a COMMIT or ROLLBACK), under the store's lock."""
        if committed:
            self.health.committed()
        if self._wal is None:
            return
        if not self.full:
            try:
                size = os.stat(self._wal).st_size
            except OSError:
                return
            if size < CHECK_EVERY_BYTES or size - self._checked_at < CHECK_EVERY_BYTES:
                if size < self._checked_at:
                    self._checked_at = 0  # the WAL started again
                return
            self._checked_at = size
            free = self.free_bytes()
            if free is None or free >= LOW_SPACE_BYTES:
                return
        self.checkpoint()

    def checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it; True when it all went."""
        try:
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("SQLite: checkpoint to free disk space failed: %s", exc)
            return False
        if busy:  # another process is reading or writing: it went part of the way
            return False
        self.full = False
        self._checked_at = 0
        return True

    def at_open(self) -> None:
        """A WAL left large on a low volume (a process killed on a full disk) goes first."""
        if self._wal is None or not os.path.exists(self._wal):
            return
        free = self.free_bytes()
        if free is not None and free < LOW_SPACE_BYTES and os.path.getsize(self._wal) >= CHECK_EVERY_BYTES:
            self.checkpoint()
