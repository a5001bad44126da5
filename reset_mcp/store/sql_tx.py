"""The Tx contract in portable SQL, shared by the SQLite and PostgreSQL stores.

Statements are written with `?` placeholders; a driver adapter subclass runs them (the
PostgreSQL one rewrites `?` to `$n`). Dialect differences are the few hooks at the top:
how a due outbox batch is claimed (SKIP LOCKED on PostgreSQL) and how audit appends are
serialised (an advisory lock on PostgreSQL; SQLite's write lock already does it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from reset_mcp.audit import GENESIS, entry_hash
from reset_mcp.store import sql_common as c
from reset_mcp.store.records import (
    ApiKeyRecord,
    ApprovalRecord,
    AuditEntry,
    ContactEvent,
    OutboxRow,
    SendRecord,
    TokenRecord,
)

TERMINAL_OUTBOX = ("sent", "failed", "expired", "cancelled")


class SqlTx:
    """Implements `reset_mcp.store.Tx`; subclasses provide `_exec`, `_one`, `_all`."""

    skip_locked = ""  # " FOR UPDATE SKIP LOCKED" on PostgreSQL

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

    # sends ---------------------------------------------------------------------------
    async def insert_send(self, send: SendRecord) -> None:
        await self._exec(f"INSERT INTO sends ({c.SEND_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", c.send_values(send))

    async def get_send(self, send_id: str) -> SendRecord | None:
        row = await self._one(f"SELECT {c.SEND_COLS} FROM sends WHERE id = ?", (send_id,))
        return c.send_from(row) if row else None

    async def update_send(self, send_id: str, status: str, reason: str | None, now: datetime) -> None:
        await self._exec(
            "UPDATE sends SET status = ?, reason = ?, updated_at = ? WHERE id = ?",
            (status, reason, c.ts(now), send_id),
        )

    async def list_sends(self, status: str | None, limit: int) -> list[SendRecord]:
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        rows = await self._all(
            f"SELECT {c.SEND_COLS} FROM sends {where} ORDER BY created_at DESC LIMIT ?", [*args, limit]
        )
        return [c.send_from(r) for r in rows]

    # tokens --------------------------------------------------------------------------
    async def insert_token(self, token: TokenRecord) -> None:
        await self._exec(f"INSERT INTO tokens ({c.TOKEN_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)", c.token_values(token))

    async def get_token(self, jti_hash: str) -> TokenRecord | None:
        row = await self._one(f"SELECT {c.TOKEN_COLS} FROM tokens WHERE jti_hash = ?", (jti_hash,))
        return c.token_from(row) if row else None

    async def get_token_for_send(self, send_id: str) -> TokenRecord | None:
        row = await self._one(f"SELECT {c.TOKEN_COLS} FROM tokens WHERE send_id = ?", (send_id,))
        return c.token_from(row) if row else None

    async def consume_token(self, jti_hash: str, now: datetime) -> bool:
        # The row count is the lock: of racing consumers exactly one sees 1.
        count = await self._exec(
            "UPDATE tokens SET consumed_at = ? WHERE jti_hash = ? AND consumed_at IS NULL "
            "AND revoked_at IS NULL AND expires_at > ?",
            (c.ts(now), jti_hash, c.ts(now)),
        )
        return count == 1

    async def revoke_tokens(
        self, *, user_id: str | None, email: str | None, now: datetime, reason: str, keep: str | None = None
    ) -> int:
        if user_id is None and email is None:
            return 0
        conds, args = [], [c.ts(now), reason]
        if user_id is not None:
            conds.append("user_id = ?")
            args.append(user_id)
        if email is not None:
            conds.append("email = ?")
            args.append(email)
        args.append(c.ts(now))
        keep_sql = ""
        if keep is not None:
            keep_sql = " AND jti_hash <> ?"
            args.append(keep)
        return await self._exec(
            "UPDATE tokens SET revoked_at = ?, revoke_reason = ? WHERE (" + " OR ".join(conds) + ") "
            "AND consumed_at IS NULL AND revoked_at IS NULL AND expires_at > ?" + keep_sql,
            args,
        )

    async def revoke_token(self, jti_hash: str, now: datetime, reason: str) -> bool:
        count = await self._exec(
            "UPDATE tokens SET revoked_at = ?, revoke_reason = ? WHERE jti_hash = ? "
            "AND consumed_at IS NULL AND revoked_at IS NULL",
            (c.ts(now), reason, jti_hash),
        )
        return count == 1

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

    # approvals -----------------------------------------------------------------------
    async def insert_approval(self, approval: ApprovalRecord) -> None:
        await self._exec(
            f"INSERT INTO approvals ({c.APPROVAL_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            c.approval_values(approval),
        )

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        row = await self._one(f"SELECT {c.APPROVAL_COLS} FROM approvals WHERE id = ?", (approval_id,))
        return c.approval_from(row) if row else None

    async def approval_for_send(self, send_id: str) -> ApprovalRecord | None:
        row = await self._one(f"SELECT {c.APPROVAL_COLS} FROM approvals WHERE send_id = ?", (send_id,))
        return c.approval_from(row) if row else None

    async def list_approvals(self, status: str | None, limit: int) -> list[ApprovalRecord]:
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        rows = await self._all(
            f"SELECT {c.APPROVAL_COLS} FROM approvals {where} ORDER BY created_at DESC, id LIMIT ?", [*args, limit]
        )
        return [c.approval_from(r) for r in rows]

    async def decide_approval(
        self, approval_id: str, *, status: str, by: str, reason: str | None, now: datetime
    ) -> bool:
        count = await self._exec(
            "UPDATE approvals SET status = ?, decided_by = ?, decision_reason = ?, decided_at = ? "
            "WHERE id = ? AND status = 'pending'",
            (status, by, reason, c.ts(now), approval_id),
        )
        return count == 1

    async def due_approval_expiries(self, now: datetime, limit: int) -> list[ApprovalRecord]:
        rows = await self._all(
            f"SELECT {c.APPROVAL_COLS} FROM approvals WHERE status = 'pending' AND expires_at <= ? "
            "ORDER BY expires_at LIMIT ?",
            (c.ts(now), limit),
        )
        return [c.approval_from(r) for r in rows]

    # contact events ------------------------------------------------------------------
    async def insert_event(self, event: ContactEvent) -> None:
        await self._exec(
            "INSERT INTO events (email, user_id, event_type, ip, device, country, metadata, created_at) "
            "VALUES (?,?,?,?,?,?,?,?)",
            c.event_values(event),
        )

    @staticmethod
    def _event_filter(
        event_type: str, since: datetime, email: str | None, ip: str | None, user_id: str | None = None
    ) -> tuple[str, list[Any]]:
        conds, args = ["event_type = ?", "created_at >= ?"], [event_type, c.ts(since)]
        for col, val in (("email", email), ("ip", ip), ("user_id", user_id)):
            if val is not None:
                conds.append(f"{col} = ?")
                args.append(val)
        return " AND ".join(conds), args

    async def count_events(
        self,
        event_type: str,
        since: datetime,
        *,
        email: str | None = None,
        ip: str | None = None,
        user_id: str | None = None,
    ) -> int:
        where, args = self._event_filter(event_type, since, email, ip, user_id)
        row = await self._one(f"SELECT COUNT(*) AS n FROM events WHERE {where}", args)
        return int(row["n"]) if row else 0

    async def oldest_event_since(
        self, event_type: str, since: datetime, *, email: str | None = None, ip: str | None = None
    ) -> datetime | None:
        where, args = self._event_filter(event_type, since, email, ip)
        row = await self._one(f"SELECT MIN(created_at) AS t FROM events WHERE {where}", args)
        return c.dt(row["t"]) if row and row["t"] is not None else None

    async def list_events(
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        since: datetime | None = None,
        event_types: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[ContactEvent]:
        conds: list[str] = []
        args: list[Any] = []
        who = [(col, val) for col, val in (("email", email), ("user_id", user_id)) if val is not None]
        if who:
            conds.append("(" + " OR ".join(f"{col} = ?" for col, _ in who) + ")")
            args.extend(val for _, val in who)
        if since is not None:
            conds.append("created_at >= ?")
            args.append(c.ts(since))
        if event_types:
            conds.append("event_type IN (" + ",".join("?" * len(event_types)) + ")")
            args.extend(event_types)
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        rows = await self._all(
            f"SELECT {c.EVENT_COLS} FROM events {where} ORDER BY created_at DESC, id DESC LIMIT ?", [*args, limit]
        )
        return [c.event_from(r) for r in rows]

    # audit ---------------------------------------------------------------------------
    async def append_audit(
        self, *, at: datetime, actor: str, action: str, subject: str, detail: dict[str, Any]
    ) -> AuditEntry:
        await self._lock_audit()
        last = await self._one("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        seq, prev = (int(last["seq"]) + 1, last["hash"]) if last else (1, GENESIS)
        digest = entry_hash(prev, seq, at, actor, action, subject, detail)
        await self._exec(
            f"INSERT INTO audit ({c.AUDIT_COLS}) VALUES (?,?,?,?,?,?,?,?)",
            (seq, c.ts(at), actor, action, subject, c.dump(detail), prev, digest),
        )
        return AuditEntry(seq, at, actor, action, subject, detail, prev, digest)

    async def list_audit(self, *, after_seq: int = 0, limit: int = 1000, newest: bool = False) -> list[AuditEntry]:
        if newest:
            rows = await self._all(f"SELECT {c.AUDIT_COLS} FROM audit ORDER BY seq DESC LIMIT ?", (limit,))
            rows.reverse()
        else:
            rows = await self._all(
                f"SELECT {c.AUDIT_COLS} FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            )
        return [c.audit_from(r) for r in rows]

    # api keys ------------------------------------------------------------------------
    async def insert_api_key(self, key: ApiKeyRecord) -> None:
        await self._exec(f"INSERT INTO api_keys ({c.KEY_COLS}) VALUES (?,?,?,?,?,?)", c.key_values(key))

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        row = await self._one(f"SELECT {c.KEY_COLS} FROM api_keys WHERE id = ?", (key_id,))
        return c.key_from(row) if row else None

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        return [c.key_from(r) for r in await self._all(f"SELECT {c.KEY_COLS} FROM api_keys ORDER BY created_at")]

    async def revoke_api_key(self, key_id: str, now: datetime) -> bool:
        count = await self._exec(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (c.ts(now), key_id)
        )
        return count == 1

    async def count_active_api_keys(self) -> int:
        row = await self._one("SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL")
        return int(row["n"]) if row else 0

    # housekeeping --------------------------------------------------------------------
    async def purge(self, before: datetime) -> dict[str, int]:
        cut = c.ts(before)
        return {
            "tokens": await self._exec("DELETE FROM tokens WHERE expires_at < ?", (cut,)),
            "events": await self._exec("DELETE FROM events WHERE created_at < ?", (cut,)),
            "outbox": await self._exec(
                "DELETE FROM outbox WHERE created_at < ? AND status IN ('sent','failed','expired','cancelled')",
                (cut,),
            ),
        }
