"""The outbox part of the Tx contract: rows handed out under leases, finished by their owner.

A lease's owner is one delivery attempt (a fresh id per claim), so an outcome, a renewal
or a give-back is accepted only from the attempt that holds the row now. Where the store
keeps time by the database's clock (`db_clock`, PostgreSQL), a time the caller passes is
read as an offset from the caller's `now` (a row's from its `created_at`) and stored as
that offset from the database's `statement_timestamp()`, and every due and lease check
compares with the database's clock: instances whose clocks differ agree on when a lease
ends. Otherwise (SQLite, one host) the caller's times are stored and compared as given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reset_mcp.store import sql_common as c
from reset_mcp.store.records import OutboxRow
from reset_mcp.store.sql_base import SqlBase

# Seconds since the epoch by the database's clock, as of the start of the statement
# (stable within it, so an index still serves `next_attempt_at <= ...`).
DB_NOW = "EXTRACT(EPOCH FROM statement_timestamp())::float8"


class OutboxSql(SqlBase):
    db_clock = False  # the PostgreSQL store sets it unless opened with clock="caller"

    def _at(self, at: datetime | None, now: datetime) -> tuple[str, tuple[Any, ...]]:
        """SQL and arguments for the time `at`, the caller's `now` being now."""
        if not self.db_clock or at is None:
            return "?", (c.ts(at),)
        if at == now:
            return DB_NOW, ()
        return f"({DB_NOW} + ?)", ((at - now).total_seconds(),)

    # outbox --------------------------------------------------------------------------
    async def insert_outbox(self, row: OutboxRow) -> None:
        values = list(c.outbox_values(row))
        marks = ["?"] * len(values)
        args: list[Any] = []
        for i, value in enumerate(values):
            if i in (7, 15):  # next_attempt_at, lease_until: relative to the row's created_at
                marks[i], extra = self._at(row.next_attempt_at if i == 7 else row.lease_until, row.created_at)
                args.extend(extra)
            else:
                args.append(value)
        await self._exec(f"INSERT INTO outbox ({c.OUTBOX_COLS}) VALUES ({','.join(marks)})", args)

    async def get_outbox(self, row_id: str) -> OutboxRow | None:
        row = await self._one(f"SELECT {c.OUTBOX_COLS} FROM outbox WHERE id = ?", (row_id,))
        return c.outbox_from(row) if row else None

    async def outbox_for_send(self, send_id: str) -> list[OutboxRow]:
        rows = await self._all(
            f"SELECT {c.OUTBOX_COLS} FROM outbox WHERE send_id = ? ORDER BY created_at, id", (send_id,)
        )
        return [c.outbox_from(r) for r in rows]

    async def claim_outbox(self, row_id: str, owner: str, now: datetime, lease_until: datetime) -> OutboxRow | None:
        lease, lease_args = self._at(lease_until, now)
        at, at_args = self._at(now, now)
        row = await self._one(
            f"UPDATE outbox SET status = 'sending', lease_owner = ?, lease_until = {lease}, attempts = attempts + 1 "
            f"WHERE id = ? AND (status = 'pending' OR (status = 'sending' AND lease_until < {at})) "
            f"RETURNING {c.OUTBOX_COLS}",
            (owner, *lease_args, row_id, *at_args),
        )
        return c.outbox_from(row) if row else None

    async def claim_due_outbox(self, owner: str, now: datetime, lease_until: datetime, limit: int) -> list[OutboxRow]:
        lease, lease_args = self._at(lease_until, now)
        at, at_args = self._at(now, now)
        rows = await self._all(
            f"UPDATE outbox SET status = 'sending', lease_owner = ?, lease_until = {lease}, attempts = attempts + 1 "
            f"WHERE id IN (SELECT id FROM outbox WHERE (status = 'pending' AND next_attempt_at <= {at}) "
            f"OR (status = 'sending' AND lease_until < {at}) ORDER BY next_attempt_at LIMIT ?"
            f"{self.skip_locked}) RETURNING {c.OUTBOX_COLS}",
            (owner, *lease_args, *at_args, *at_args, limit),
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
        # Only the lease holder may finish a row: an attempt whose lease ran out and was
        # taken over must not overwrite the new attempt's outcome.
        due, due_args = self._at(next_attempt_at, now)
        count = await self._exec(
            "UPDATE outbox SET status = ?, last_error = ?, provider_message_id = COALESCE(?, provider_message_id), "
            f"sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END, next_attempt_at = COALESCE({due}, "
            "next_attempt_at), lease_owner = NULL, lease_until = NULL "
            "WHERE id = ? AND status = 'sending' AND lease_owner = ?",
            (status, error, provider_message_id, status, c.ts(now), *due_args, row_id, owner),
        )
        return count == 1

    async def renew_outbox(self, row_id: str, owner: str, now: datetime, lease_until: datetime) -> bool:
        lease, lease_args = self._at(lease_until, now)
        count = await self._exec(
            f"UPDATE outbox SET lease_until = {lease} WHERE id = ? AND status = 'sending' AND lease_owner = ?",
            (*lease_args, row_id, owner),
        )
        return count == 1

    async def release_outbox(
        self,
        row_id: str,
        owner: str,
        now: datetime,
        *,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        due, due_args = self._at(next_attempt_at or now, now)
        count = await self._exec(
            f"UPDATE outbox SET status = 'pending', next_attempt_at = {due}, "
            "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
            "last_error = COALESCE(?, last_error), lease_owner = NULL, lease_until = NULL "
            "WHERE id = ? AND status = 'sending' AND lease_owner = ?",
            (*due_args, error, row_id, owner),
        )
        return count == 1

    async def requeue_outbox(self, row_id: str, now: datetime) -> bool:
        due, due_args = self._at(now, now)
        count = await self._exec(
            f"UPDATE outbox SET status = 'pending', next_attempt_at = {due}, attempts = 0, last_error = NULL "
            "WHERE id = ? AND status IN ('failed', 'pending')",
            (*due_args, row_id),
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
