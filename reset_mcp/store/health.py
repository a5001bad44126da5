"""Write health: whether the store's writes are failing now, for /healthz.

`SELECT 1` answers while every write fails (another process holding SQLite's write lock,
a full disk, a read-only PostgreSQL). So each store tells its `WriteHealth` when a write
fails for a reason of the store's own (busy, full, unavailable, I/O: not a constraint a
caller broke) and when one commits; `problem()` is the latest failure's reason while it
is recent and no commit has come since. A serving process writes every poll (the worker
claims due outbox rows, ends overdue approvals), so the answer stays current by itself.
The reasons are fixed texts, safe to show without a key: never a path or a driver's text.
"""

from __future__ import annotations

import time

from reset_mcp.errors import StoreBusyError, StoreError, StoreFullError, StoreUnavailableError

RECENT_SECONDS = 60.0  # a failure older than this, with no write since, is no longer reported
BUSY = "database busy: a write waited past its deadline for the write lock"
FULL = "disk full: writes fail until space is freed"
UNAVAILABLE = "database unavailable: no connection could be had for a write"
FAILED = "writes failing: the database refused or lost a write"


def reason_of(error: StoreError) -> str:
    if isinstance(error, StoreBusyError):
        return BUSY
    if isinstance(error, StoreFullError):
        return FULL
    if isinstance(error, StoreUnavailableError):
        return UNAVAILABLE
    return FAILED


class WriteHealth:
    def __init__(self) -> None:
        self._failure: tuple[float, str] | None = None

    def failed(self, error: StoreError) -> StoreError:
        """Record a write that failed for the store's own reason; gives `error` back."""
        self._failure = (time.monotonic(), reason_of(error))
        return error

    def committed(self) -> None:
        self._failure = None

    def problem(self) -> str | None:
        """Why writes are failing now, or None."""
        if self._failure is None:
            return None
        at, reason = self._failure
        if time.monotonic() - at > RECENT_SECONDS:
            return None
        return f"{reason} ({time.monotonic() - at:.0f}s ago)"
