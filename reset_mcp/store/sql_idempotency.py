"""The idempotency part of the Tx contract: a caller's key, claimed once, answered once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reset_mcp.store import sql_common as c
from reset_mcp.store.records import IdempotencyRecord
from reset_mcp.store.sql_base import SqlBase

_COLS = "caller_id, idem_key, tool, args_hash, answer, created_at"


def _record(r: c.Row) -> IdempotencyRecord:
    return IdempotencyRecord(
        caller_id=r["caller_id"], key=r["idem_key"], tool=r["tool"], args_hash=r["args_hash"],
        created_at=c.req_dt(r["created_at"]), answer=c.load(r["answer"]) if r["answer"] else None,
    )  # fmt: skip


class IdempotencySql(SqlBase):
    async def claim_idempotency(
        self, caller_id: str, key: str, tool: str, args_hash: str, now: datetime, expired_before: datetime
    ) -> IdempotencyRecord | None:
        # ON CONFLICT DO NOTHING waits, on PostgreSQL, for a racing insert of the same key
        # to commit or roll back, then either inserts or sees the committed row.
        inserted = await self._exec(
            f"INSERT INTO idempotency ({_COLS}) VALUES (?,?,?,?,NULL,?) ON CONFLICT (caller_id, idem_key) DO NOTHING",
            (caller_id, key, tool, args_hash, c.ts(now)),
        )
        if inserted:
            return None
        # A key older than the window is free again: taken over in place.
        taken = await self._exec(
            "UPDATE idempotency SET tool = ?, args_hash = ?, answer = NULL, created_at = ? "
            "WHERE caller_id = ? AND idem_key = ? AND created_at < ?",
            (tool, args_hash, c.ts(now), caller_id, key, c.ts(expired_before)),
        )
        if taken:
            return None
        return await self.get_idempotency(caller_id, key)

    async def get_idempotency(self, caller_id: str, key: str) -> IdempotencyRecord | None:
        row = await self._one(f"SELECT {_COLS} FROM idempotency WHERE caller_id = ? AND idem_key = ?", (caller_id, key))
        return _record(row) if row else None

    async def answer_idempotency(self, caller_id: str, key: str, answer: dict[str, Any]) -> None:
        await self._exec(
            "UPDATE idempotency SET answer = ? WHERE caller_id = ? AND idem_key = ?", (c.dump(answer), caller_id, key)
        )

    async def release_idempotency(self, caller_id: str, key: str) -> None:
        await self._exec("DELETE FROM idempotency WHERE caller_id = ? AND idem_key = ?", (caller_id, key))
