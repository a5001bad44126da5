"""The Tx contract in portable SQL, shared by the SQLite and PostgreSQL stores.

Statements are written with `?` placeholders; a driver adapter subclass runs them (the
PostgreSQL one rewrites `?` to `$n`). Dialect differences are the hooks in `SqlBase`:
how a due outbox batch is claimed (SKIP LOCKED on PostgreSQL) and how audit appends are
serialised (an advisory lock on PostgreSQL; SQLite's write lock already does it). The
contract is split by subject: sends, tokens and approvals here, the outbox in
`sql_outbox`, events, audit and keys in `sql_history`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from reset_mcp.store import sql_common as c
from reset_mcp.store.records import (
    APPROVAL_STATUSES,
    FINAL_OUTBOX_STATUSES,
    FINAL_SEND_STATUSES,
    ApprovalRecord,
    SendRecord,
    TokenRecord,
)
from reset_mcp.store.sql_history import HistorySql
from reset_mcp.store.sql_idempotency import IdempotencySql
from reset_mcp.store.sql_outbox import OutboxSql
from reset_mcp.vocab import ApprovalStatus


class SqlTx(OutboxSql, HistorySql, IdempotencySql):
    """Implements `reset_mcp.store.Tx`; a driver subclass provides `_exec`, `_one`, `_all`."""

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
        await self._exec(f"INSERT INTO tokens ({c.TOKEN_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", c.token_values(token))

    async def get_token(self, jti_hash: str) -> TokenRecord | None:
        row = await self._one(f"SELECT {c.TOKEN_COLS} FROM tokens WHERE jti_hash = ?", (jti_hash,))
        return c.token_from(row) if row else None

    async def get_token_for_send(self, send_id: str) -> TokenRecord | None:
        row = await self._one(f"SELECT {c.TOKEN_COLS} FROM tokens WHERE send_id = ?", (send_id,))
        return c.token_from(row) if row else None

    async def unsealed_tokens(
        self, now: datetime, until: datetime, kids: Sequence[str], limit: int
    ) -> list[TokenRecord]:
        if not kids:
            return []
        rows = await self._all(
            f"SELECT {c.TOKEN_COLS} FROM tokens WHERE mac IS NULL AND consumed_at IS NULL AND revoked_at IS NULL "
            f"AND expires_at > ? AND expires_at <= ? AND kid IN ({','.join('?' * len(kids))}) "
            "ORDER BY expires_at LIMIT ?",
            (c.ts(now), c.ts(until), *kids, limit),
        )
        return [c.token_from(r) for r in rows]

    async def seal_token(self, jti_hash: str, mac: str) -> bool:
        count = await self._exec("UPDATE tokens SET mac = ? WHERE jti_hash = ? AND mac IS NULL", (mac, jti_hash))
        return count == 1

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

    # approvals -----------------------------------------------------------------------
    async def insert_approval(self, approval: ApprovalRecord) -> None:
        await self._exec(
            f"INSERT INTO approvals ({c.APPROVAL_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            c.approval_values(approval),
        )

    async def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        row = await self._one(f"SELECT {c.APPROVAL_COLS} FROM approvals WHERE id = ?", (approval_id,))
        return c.approval_from(row) if row else None

    async def approval_for_send(self, send_id: str) -> ApprovalRecord | None:
        row = await self._one(f"SELECT {c.APPROVAL_COLS} FROM approvals WHERE send_id = ?", (send_id,))
        return c.approval_from(row) if row else None

    async def list_approvals(
        self,
        status: str | None,
        limit: int,
        *,
        requested_by: str | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[ApprovalRecord]:
        conditions: list[str] = []
        args: list[Any] = []
        if status:
            conditions.append("status = ?")
            args.append(status)
        if requested_by is not None:
            conditions.append("requested_by = ?")
            args.append(requested_by)
        if after is not None:
            # Keyset paging in the listing's own order (newest first, then id): rows that
            # arrive meanwhile neither shift nor repeat a page.
            conditions.append("(created_at < ? OR (created_at = ? AND id > ?))")
            args += [c.ts(after[0]), c.ts(after[0]), after[1]]
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._all(
            f"SELECT {c.APPROVAL_COLS} FROM approvals {where} ORDER BY created_at DESC, id LIMIT ?", [*args, limit]
        )
        return [c.approval_from(r) for r in rows]

    async def count_pending_approvals(self, requested_by: str, limit: int) -> int:
        # Counted up to `limit` only: the bound is all a caller needs to know.
        row = await self._one(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM approvals WHERE requested_by = ? AND status = 'pending' "
            "LIMIT ?) AS held",
            (requested_by, limit),
        )
        return int(row["n"]) if row else 0

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

    # housekeeping --------------------------------------------------------------------
    async def purge(self, before: datetime, limit: int) -> dict[str, int]:
        # At most `limit` rows a table, so a caller can keep each transaction short (see
        # flows.retention.purge). Children before their request: a request goes only once
        # nothing refers to it any more.
        cut = c.ts(before)
        done = ", ".join(f"'{s}'" for s in FINAL_OUTBOX_STATUSES)
        decided = ", ".join(f"'{s}'" for s in APPROVAL_STATUSES if s != ApprovalStatus.PENDING)
        final = ", ".join(f"'{s}'" for s in FINAL_SEND_STATUSES)
        return {
            "tokens": await self._exec(
                "DELETE FROM tokens WHERE jti_hash IN (SELECT jti_hash FROM tokens WHERE expires_at < ? LIMIT ?)",
                (cut, limit),
            ),
            "events": await self._exec(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE created_at < ? LIMIT ?)", (cut, limit)
            ),
            "outbox": await self._exec(
                "DELETE FROM outbox WHERE id IN "
                f"(SELECT id FROM outbox WHERE created_at < ? AND status IN ({done}) LIMIT ?)",
                (cut, limit),
            ),
            "approvals": await self._exec(
                "DELETE FROM approvals WHERE id IN "
                f"(SELECT id FROM approvals WHERE status IN ({decided}) AND expires_at < ? LIMIT ?)",
                (cut, limit),
            ),
            "contact_facts": await self._exec(
                "DELETE FROM contact_facts WHERE mailbox IN "
                "(SELECT mailbox FROM contact_facts WHERE updated_at < ? LIMIT ?)",
                (cut, limit),
            ),
            "sends": await self._exec(
                "DELETE FROM sends WHERE id IN (SELECT s.id FROM sends s "
                f"WHERE s.status IN ({final}) AND s.created_at < ? "
                "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.send_id = s.id) "
                "AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.send_id = s.id) "
                "AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.send_id = s.id) LIMIT ?)",
                (cut, limit),
            ),
            # Keys live 24 hours; `before` is at least a day back, so none still in use goes.
            "idempotency": await self._exec(
                "DELETE FROM idempotency WHERE (caller_id, idem_key) IN "
                "(SELECT caller_id, idem_key FROM idempotency WHERE created_at < ? LIMIT ?)",
                (cut, limit),
            ),
        }
