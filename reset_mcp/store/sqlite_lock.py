"""Taking SQLite's write lock without blocking the event loop for long.

`BEGIN IMMEDIATE` takes the write lock up front. While another process holds it, a
blocking try would sit in SQLite's busy handler on the loop's thread, so only a first try
waits (`busy_timeout_ms`: a lock released that soon is the common case); the caller
retries with its own pauses, with busy_timeout at 0.
"""

from __future__ import annotations

import sqlite3


def is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def begin_immediate(conn: sqlite3.Connection, *, blocking: bool, busy_timeout_ms: int) -> bool:
    """True once begun; False while another process holds the lock; other errors raise."""
    try:
        if blocking:
            conn.execute("BEGIN IMMEDIATE")
            return True
        conn.execute("PRAGMA busy_timeout=0")
        try:
            conn.execute("BEGIN IMMEDIATE")
        finally:
            conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        return True
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            return False
        raise
