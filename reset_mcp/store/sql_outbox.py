"""The outbox part of the Tx contract: rows handed out under leases, finished by their owner."""

from __future__ import annotations

from datetime import datetime

from reset_mcp.store import sql_common as c
from reset_mcp.store.records import OutboxRow
from reset_mcp.store.sql_base import SqlBase


class OutboxSql(SqlBase):
    # outbox --------------------------------------------------------------------------
    async def insert_outbox(self, row: OutboxRow) -> None:
        await self._exec(
            f"INSERT INTO outbox ({c.OUTBOX_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", c.outbox_values(row)
        )

    async def get_outbox(self, row_id: str) -> OutboxRow | None:
        row = await self._one(f"SELECT {c.OUTBOX_COLS} FROM outbox WHERE id = ?", (row_id,))
        return c.outbox_from(row) if row else None

    async def outbox_for_send(self, send_id: str) -> list[OutboxRow]:
        rows = await self._all(
            f"SELECT {c.OUTBOX_COLS} FROM outbox WHERE send_id = ? ORDER BY created_at, id", (send_id,)
        )
        return [c.outbox_from(r) for r in rows]

    async def claim_outbox(self, row_id: str, owner: str, now: datetime, lease_until: datetime) -> OutboxRow | None:
        row = await self._one(
            "UPDATE outbox SET status = 'sending', lease_owner = ?, lease_until = ?, attempts = attempts + 1 "
            "WHERE id = ? AND (status = 'pending' OR (status = 'sending' AND lease_until < ?)) "
            f"RETURNING {c.OUTBOX_COLS}",
            (owner, c.ts(lease_until), row_id, c.ts(now)),
        )
        return c.outbox_from(row) if row else None

    async def claim_due_outbox(self, owner: str, now: datetime, lease_until: datetime, limit: int) -> list[OutboxRow]:
        rows = await self._all(
            "UPDATE outbox SET status = 'sending', lease_owner = ?, lease_until = ?, attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM outbox WHERE (status = 'pending' AND next_attempt_at <= ?) "
            "OR (status = 'sending' AND lease_until < ?) ORDER BY next_attempt_at LIMIT ?"
            f"{self.skip_locked}) RETURNING {c.OUTBOX_COLS}",
            (owner, c.ts(lease_until), c.ts(now), c.ts(now), limit),
        )
        return [c.outbox_from(r) for r in rows]

    async def finish_outbox(
        self,
        row_id: str,
        owner: str,
        *,
        status: str,
        now: datetime,
        error: str | None = None,
        provider_message_id: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        # Only the lease holder may finish a row: a worker whose lease ran out and was
        # taken over must not overwrite the new owner's outcome.
        count = await self._exec(
            "UPDATE outbox SET status = ?, last_error = ?, provider_message_id = COALESCE(?, provider_message_id), "
            "sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END, next_attempt_at = COALESCE(?, next_attempt_at), "
            "lease_owner = NULL, lease_until = NULL WHERE id = ? AND status = 'sending' AND lease_owner = ?",
            (status, error, provider_message_id, status, c.ts(now), c.ts(next_attempt_at), row_id, owner),
        )
        return count == 1

    async def requeue_outbox(self, row_id: str, now: datetime) -> bool:
        count = await self._exec(
            "UPDATE outbox SET status = 'pending', next_attempt_at = ?, attempts = 0, last_error = NULL "
            "WHERE id = ? AND status IN ('failed', 'pending')",
            (c.ts(now), row_id),
        )
        return count == 1

    async def outbox_counts(self) -> dict[str, int]:
        rows = await self._all("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    async def list_outbox(self, status: str | None, limit: int) -> list[OutboxRow]:
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        rows = await self._all(
            f"SELECT {c.OUTBOX_COLS} FROM outbox {where} ORDER BY created_at DESC, id LIMIT ?", [*args, limit]
        )
        return [c.outbox_from(r) for r in rows]

    async def next_outbox_due(self) -> datetime | None:
        row = await self._one(
            "SELECT MIN(CASE WHEN status = 'pending' THEN next_attempt_at ELSE lease_until END) AS due "
            "FROM outbox WHERE status IN ('pending', 'sending')"
        )
        return c.dt(row["due"]) if row and row["due"] is not None else None
