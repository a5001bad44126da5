"""Disk full is said as such by both stores (issue 21 item 7); the SQLite store's recovery on
a real small volume is in tests/faults/test_disk_full.py."""

from __future__ import annotations

import sqlite3

import asyncpg

from reset_mcp.errors import StoreError, StoreFullError
from reset_mcp.store.postgres import _wrap
from reset_mcp.store.sqlite_space import SpaceWatch, is_full


def test_postgres_disk_full_is_store_full_error() -> None:
    error = _wrap(asyncpg.exceptions.DiskFullError("could not extend file: No space left on device"))
    assert isinstance(error, StoreFullError) and "full" in str(error)
    other = _wrap(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    assert type(other) is StoreError


def test_sqlite_full_error_is_store_full_error() -> None:
    conn = sqlite3.connect(":memory:")
    watch = SpaceWatch(conn, ":memory:")
    full = sqlite3.OperationalError("database or disk is full")
    assert is_full(full) and not is_full(sqlite3.OperationalError("database is locked"))
    error = watch.error(full, "commit failed")
    assert isinstance(error, StoreFullError) and "full" in str(error) and watch.full
    assert type(watch.error(sqlite3.OperationalError("no such table: x"), "database error")) is StoreError
