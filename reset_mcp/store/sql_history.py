"""The history part of the Tx contract: contact events, the audit chain, API keys and admin sessions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from reset_mcp.audit import GENESIS, detail_text, entry_hash, keyed_entry_hash
from reset_mcp.store import sql_common as c
from reset_mcp.store.records import AdminSessionRecord, ApiKeyRecord, AuditEntry, ContactEvent, ContactFacts
from reset_mcp.store.sql_base import SqlBase


class HistorySql(SqlBase):
    # contact events ------------------------------------------------------------------
    async def insert_event(self, event: ContactEvent) -> None:
        await self._exec(
            "INSERT INTO events (email, user_id, event_type, ip, device, country, metadata, created_at, mailbox, net) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            c.event_values(event),
        )

    @staticmethod
    def _event_filter(
        event_type: str, since: datetime, mailbox: str | None, net: str | None, user_id: str | None = None
    ) -> tuple[str, list[Any]]:
        conds, args = ["event_type = ?", "created_at >= ?"], [event_type, c.ts(since)]
        for col, val in (("mailbox", mailbox), ("net", net), ("user_id", user_id)):
            if val is not None:
                conds.append(f"{col} = ?")
                args.append(val)
        return " AND ".join(conds), args

    async def count_events(
        self,
        event_type: str,
        since: datetime,
        *,
        mailbox: str | None = None,
        net: str | None = None,
        user_id: str | None = None,
        at_most: int | None = None,
    ) -> int:
        where, args = self._event_filter(event_type, since, mailbox, net, user_id)
        if at_most is None:
            row = await self._one(f"SELECT COUNT(*) AS n FROM events WHERE {where}", args)
        else:
            # A limit check needs to know only whether the count reaches the limit: stop
            # reading the window's rows there (a caller with a high budget has many).
            row = await self._one(
                f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM events WHERE {where} LIMIT ?) AS w", [*args, at_most]
            )
        return int(row["n"]) if row else 0

    async def oldest_event_since(
        self, event_type: str, since: datetime, *, mailbox: str | None = None, net: str | None = None
    ) -> datetime | None:
        where, args = self._event_filter(event_type, since, mailbox, net)
        row = await self._one(f"SELECT MIN(created_at) AS t FROM events WHERE {where}", args)
        return c.dt(row["t"]) if row and row["t"] is not None else None

    async def list_events(
        self,
        *,
        mailbox: str | None = None,
        user_id: str | None = None,
        email: str | None = None,
        since: datetime | None = None,
        event_types: Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[ContactEvent]:
        conds: list[str] = []
        args: list[Any] = []
        who = [(col, val) for col, val in (("mailbox", mailbox), ("user_id", user_id)) if val is not None]
        if who:
            conds.append("(" + " OR ".join(f"{col} = ?" for col, _ in who) + ")")
            args.extend(val for _, val in who)
        if email is not None:  # one spelling of the mailbox (no index of its own: give `mailbox` too)
            conds.append("email = ?")
            args.append(email)
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

    async def recorded_events_since(
        self, mailbox: str, since: datetime, *, excluding: Sequence[str]
    ) -> tuple[int, datetime | None]:
        marks = ",".join("?" * len(excluding))
        row = await self._one(
            "SELECT COUNT(*) AS n, MIN(created_at) AS t FROM events "
            f"WHERE mailbox = ? AND created_at >= ? AND event_type NOT IN ({marks})",
            [mailbox, c.ts(since), *excluding],
        )
        if not row:
            return 0, None
        return int(row["n"]), c.dt(row["t"]) if row["t"] is not None else None

    # contact facts -------------------------------------------------------------------
    async def get_contact_facts(self, mailbox: str) -> ContactFacts | None:
        row = await self._one("SELECT mailbox, facts, updated_at FROM contact_facts WHERE mailbox = ?", (mailbox,))
        return ContactFacts(row["mailbox"], c.load(row["facts"]), c.req_dt(row["updated_at"])) if row else None

    async def put_contact_facts(self, facts: ContactFacts) -> None:
        await self._exec(
            "INSERT INTO contact_facts (mailbox, facts, updated_at) VALUES (?,?,?) "
            "ON CONFLICT (mailbox) DO UPDATE SET facts = excluded.facts, updated_at = excluded.updated_at",
            (facts.mailbox, c.dump(facts.facts), c.ts(facts.updated_at)),
        )

    # audit ---------------------------------------------------------------------------
    async def append_audit(
        self, *, at: datetime, actor: str, action: str, subject: str, detail: dict[str, Any]
    ) -> AuditEntry:
        await self._lock_audit()
        # MAX(seq), not ORDER BY ... LIMIT 1: both read one row, but only this form shows
        # up as an index search in a query plan on SQLite, where seq is the rowid.
        last = await self._one("SELECT seq, hash FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)")
        seq, prev = (int(last["seq"]) + 1, last["hash"]) if last else (1, GENESIS)
        text = detail_text(detail)  # what `c.dump` writes, and what the hash covers: encoded once
        if self.audit_key is None:
            digest = entry_hash(prev, seq, at, actor, action, subject, detail, text=text)
        else:
            digest = keyed_entry_hash(self.audit_key, prev, seq, at, actor, action, subject, detail, text=text)
        await self._exec(
            f"INSERT INTO audit ({c.AUDIT_COLS}) VALUES (?,?,?,?,?,?,?,?)",
            (seq, c.ts(at), actor, action, subject, text, prev, digest),
        )
        self.audit_head = (seq, digest)  # anchored by the store once this transaction commits
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

    # admin sessions ------------------------------------------------------------------
    async def insert_admin_session(self, session: AdminSessionRecord) -> None:
        await self._exec(
            "INSERT INTO admin_sessions (id, key_id, created_at, expires_at) VALUES (?,?,?,?)",
            (session.id, session.key_id, c.ts(session.created_at), c.ts(session.expires_at)),
        )

    async def get_admin_session(self, session_id: str) -> AdminSessionRecord | None:
        row = await self._one(
            "SELECT id, key_id, created_at, expires_at FROM admin_sessions WHERE id = ?", (session_id,)
        )
        if row is None:
            return None
        return AdminSessionRecord(row["id"], row["key_id"], c.req_dt(row["created_at"]), c.req_dt(row["expires_at"]))

    async def delete_admin_session(self, session_id: str) -> bool:
        return await self._exec("DELETE FROM admin_sessions WHERE id = ?", (session_id,)) == 1

    async def delete_expired_admin_sessions(self, now: datetime, limit: int) -> int:
        return await self._exec(
            "DELETE FROM admin_sessions WHERE id IN (SELECT id FROM admin_sessions WHERE expires_at <= ? LIMIT ?)",
            (c.ts(now), limit),
        )
