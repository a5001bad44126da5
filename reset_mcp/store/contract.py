"""The Store protocol: everything reset-mcp keeps, behind one small contract.

A `Store` hands out transactions; every read and write happens on a `Tx`. What one
`async with store.transaction() as tx:` block does is atomic: all of it commits, or
none of it does (an exception rolls it back). That is how a token, its send record
and its outbox row are written together, and how a decision and its audit entry
cannot part.

Contract details every backend must honour (tests/test_store_contract.py checks each
on SQLite and PostgreSQL):
- `consume_token` is a conditional update (`consumed_at IS NULL AND revoked_at IS NULL
  AND expires_at > now`): of any number of racing calls exactly one gets True.
- `decide_approval` likewise succeeds once; a second decision gets False.
- `claim_outbox` / `claim_due_outbox` hand a row to one owner until its lease ends;
  a row whose lease ran out may be claimed again (the owner died). The owner is one
  delivery attempt (a fresh id per claim): `finish_outbox`, `renew_outbox` and
  `release_outbox` succeed only for the attempt holding the row now, so an attempt
  that was taken over, in this process or another, cannot record an outcome.
- Leases and due times: on PostgreSQL by the database's clock (a time the caller passes
  is an offset from its `now`), so instances' clocks may differ; on SQLite (one host)
  by the host's clock, as the callers' `now` gives it.
- `append_audit` serialises appends so the hash chain never forks.
- Driver errors are wrapped in `StoreError` (`raise ... from exc`); no connection
  within the pool timeout raises `StoreUnavailableError`.

The local twin is SQLite (a file, or `sqlite:///:memory:` for tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from reset_mcp.audit_anchor import AuditAnchor
from reset_mcp.store.records import (
    AdminSessionRecord,
    ApiKeyRecord,
    ApprovalRecord,
    AuditEntry,
    ContactEvent,
    ContactFacts,
    IdempotencyRecord,
    OutboxRow,
    SendRecord,
    TokenRecord,
)

if TYPE_CHECKING:
    from reset_mcp.audit import AuditKey


class Tx(Protocol):
    async def lock(self, key: str) -> None:
        """Hold a lock on `key` until this transaction ends (check-then-write without races)."""
        ...

    # sends ---------------------------------------------------------------------------
    async def insert_send(self, send: SendRecord) -> None: ...
    async def get_send(self, send_id: str) -> SendRecord | None: ...
    async def update_send(self, send_id: str, status: str, reason: str | None, now: datetime) -> None: ...
    async def list_sends(self, status: str | None, limit: int) -> list[SendRecord]: ...

    # tokens --------------------------------------------------------------------------
    async def insert_token(self, token: TokenRecord) -> None: ...
    async def get_token(self, jti_hash: str) -> TokenRecord | None: ...
    async def get_token_for_send(self, send_id: str) -> TokenRecord | None: ...
    async def unsealed_tokens(
        self, now: datetime, until: datetime, kids: Sequence[str], limit: int
    ) -> list[TokenRecord]:
        """Live rows (not consumed, not revoked, expiring in (now, until], signed by one
        of `kids`) that have no MAC."""
        ...

    async def seal_token(self, jti_hash: str, mac: str) -> bool:
        """Set the MAC of a row that has none (True); a row that has one is left alone."""
        ...

    async def consume_token(self, jti_hash: str, now: datetime) -> bool: ...
    async def revoke_tokens(
        self, *, user_id: str | None, email: str | None, now: datetime, reason: str, keep: str | None = None
    ) -> int: ...
    async def revoke_token(self, jti_hash: str, now: datetime, reason: str) -> bool: ...

    # outbox --------------------------------------------------------------------------
    async def insert_outbox(self, row: OutboxRow) -> None: ...
    async def get_outbox(self, row_id: str) -> OutboxRow | None: ...
    async def outbox_for_send(self, send_id: str) -> list[OutboxRow]: ...
    async def claim_outbox(self, row_id: str, owner: str, now: datetime, lease_until: datetime) -> OutboxRow | None: ...
    async def claim_due_outbox(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[OutboxRow]: ...
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
    ) -> bool: ...
    async def renew_outbox(self, row_id: str, owner: str, now: datetime, lease_until: datetime) -> bool:
        """Extend the lease of attempt `owner` (it waits for a connection, say); False if the
        row is no longer that attempt's."""
        ...

    async def release_outbox(
        self,
        row_id: str,
        owner: str,
        now: datetime,
        *,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
    ) -> bool:
        """Give the row back as `pending`, due at `next_attempt_at` (default now), its attempt
        not counted: the attempt never got as far as sending (no connection before its
        deadline). False if the row is no longer attempt `owner`'s."""
        ...

    async def requeue_outbox(self, row_id: str, now: datetime) -> bool: ...
    async def outbox_counts(self) -> dict[str, int]: ...
    async def list_outbox(self, status: str | None, limit: int) -> list[OutboxRow]: ...
    async def next_outbox_due(self) -> datetime | None: ...

    # approvals -----------------------------------------------------------------------
    async def insert_approval(self, approval: ApprovalRecord) -> None: ...
    async def get_approval(self, approval_id: str) -> ApprovalRecord | None: ...
    async def approval_for_send(self, send_id: str) -> ApprovalRecord | None: ...
    async def list_approvals(
        self,
        status: str | None,
        limit: int,
        *,
        requested_by: str | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[ApprovalRecord]:
        """Newest first (then by id); `after`: the (created_at, id) of the last row of the page before."""
        ...

    async def count_pending_approvals(self, requested_by: str, limit: int) -> int:
        """Pending approvals `requested_by` holds, counted up to `limit`."""
        ...

    async def decide_approval(
        self, approval_id: str, *, status: str, by: str, reason: str | None, now: datetime
    ) -> bool: ...
    async def due_approval_expiries(self, now: datetime, limit: int) -> list[ApprovalRecord]: ...

    # contact events ------------------------------------------------------------------
    async def insert_event(self, event: ContactEvent) -> None:
        """`event.mailbox` defaults to its address, `event.net` to `canonical.ip_key(ip)`."""
        ...

    # Counted and listed by the keys limits count on (`reset_mcp.canonical`): the mailbox
    # and the host network, never the address or IP as written (those have no index).
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
        """How many match; with `at_most`, min(that, at_most): enough for a limit check."""
        ...

    async def oldest_event_since(
        self, event_type: str, since: datetime, *, mailbox: str | None = None, net: str | None = None
    ) -> datetime | None: ...
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
        """Newest first; `mailbox` OR `user_id`, then only `email` (one spelling) if given."""
        ...

    async def recorded_events_since(
        self, mailbox: str, since: datetime, *, excluding: Sequence[str]
    ) -> tuple[int, datetime | None]:
        """How many events of `mailbox` since `since` have a type none of `excluding` (what
        agents recorded), and the oldest one's time."""
        ...

    # contact facts -------------------------------------------------------------------
    async def get_contact_facts(self, mailbox: str) -> ContactFacts | None: ...
    async def put_contact_facts(self, facts: ContactFacts) -> None:
        """Insert or replace the row of `facts.mailbox`."""
        ...

    # audit ---------------------------------------------------------------------------
    async def append_audit(
        self, *, at: datetime, actor: str, action: str, subject: str, detail: dict[str, Any]
    ) -> AuditEntry: ...
    async def list_audit(self, *, after_seq: int = 0, limit: int = 1000, newest: bool = False) -> list[AuditEntry]: ...

    # api keys ------------------------------------------------------------------------
    async def insert_api_key(self, key: ApiKeyRecord) -> None: ...
    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...
    async def list_api_keys(self) -> list[ApiKeyRecord]: ...
    async def revoke_api_key(self, key_id: str, now: datetime) -> bool: ...
    async def count_active_api_keys(self) -> int: ...

    # admin sessions (the approvals page) ---------------------------------------------
    async def insert_admin_session(self, session: AdminSessionRecord) -> None: ...
    async def get_admin_session(self, session_id: str) -> AdminSessionRecord | None: ...
    async def delete_admin_session(self, session_id: str) -> bool:
        """True if the session existed (this call ended it)."""
        ...

    async def delete_expired_admin_sessions(self, now: datetime, limit: int) -> int: ...

    # idempotency keys ----------------------------------------------------------------
    async def claim_idempotency(
        self, caller_id: str, key: str, tool: str, args_hash: str, now: datetime, expired_before: datetime
    ) -> IdempotencyRecord | None:
        """Claim `key` for this call: None when claimed (new, or older than `expired_before`),
        else the existing record. A racing claim of the same key waits for this transaction."""
        ...

    async def get_idempotency(self, caller_id: str, key: str) -> IdempotencyRecord | None: ...
    async def answer_idempotency(self, caller_id: str, key: str, answer: dict[str, Any]) -> None: ...
    async def release_idempotency(self, caller_id: str, key: str) -> None: ...

    # housekeeping --------------------------------------------------------------------
    async def purge(self, before: datetime, limit: int) -> dict[str, int]:
        """Delete up to `limit` rows a table of what ended before `before`: expired tokens,
        events, finished outbox rows, decided approvals, and finished requests nothing
        refers to any more. Counts by table. `housekeeping.purge` calls it in batches."""
        ...


class Store(Protocol):
    url_for_display: str
    audit_key: AuditKey | None  # keys the audit entries it appends (None: unkeyed, version 1)
    anchor: AuditAnchor | None  # where it records the chain's head after each commit, if anywhere

    def transaction(self) -> AbstractAsyncContextManager[Tx]: ...

    def reading(self) -> AbstractAsyncContextManager[Tx]:
        """A consistent, read-only view of what is committed: a write inside is refused
        (StoreError). It takes no write lock, so it never waits for a writer, in this
        process or another (an API key check during a long purge batch, say)."""
        ...

    async def migrate(self) -> list[str]:
        """Apply pending schema migrations; idempotent and safe to run from two processes."""
        ...

    async def ping(self) -> None: ...

    def write_problem(self) -> str | None:
        """Why writes are failing now (a recent failure for the store's own reason, no
        write committed since; a full disk), in a fixed text safe to show anyone; else None."""
        ...

    async def aclose(self) -> None: ...
