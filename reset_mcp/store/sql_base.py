"""The driver seam under the portable SQL: three primitives and two dialect hooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reset_mcp.audit import AuditKey
from reset_mcp.store import sql_common as c


class SqlBase:
    """Subclasses (one per driver) provide `_exec` (returns the row count), `_one`, `_all`."""

    skip_locked = ""  # " FOR UPDATE SKIP LOCKED" on PostgreSQL
    audit_key: AuditKey | None = None  # keys new audit entries (the store's, set per transaction)
    audit_head: tuple[int, str] | None = None  # (seq, hash) of the last entry this transaction appended

    async def _exec(self, sql: str, args: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    async def _one(self, sql: str, args: Sequence[Any] = ()) -> c.Row | None:
        raise NotImplementedError

    async def _all(self, sql: str, args: Sequence[Any] = ()) -> list[c.Row]:
        raise NotImplementedError

    async def _lock_audit(self) -> None:
        return None

    async def lock(self, key: str) -> None:
        """Serialise transactions that name the same key until commit (SQLite: already serial)."""
        return None
