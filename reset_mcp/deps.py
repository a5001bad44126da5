"""What every use case needs, built once by the composition root (`app.py`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio

from reset_mcp.bounds import answer_by
from reset_mcp.canonical import Canon
from reset_mcp.clock import Clock
from reset_mcp.context import GeoLocator
from reset_mcp.directory import Directory
from reset_mcp.emails.registry import EmailKinds
from reset_mcp.models import DeliveryInfo
from reset_mcp.outbox.dispatcher import DeliveryOutcome, Dispatcher
from reset_mcp.outbox.release import Releaser
from reset_mcp.policy.abuse import AbuseRules
from reset_mcp.policy.oversight import Policy
from reset_mcp.store import Store, Tx
from reset_mcp.store.records import OutboxRow
from reset_mcp.tokens import TokenSigner
from reset_mcp.vocab import Scope

log = logging.getLogger("reset_mcp")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: `id` lands in the audit log and in `requested_by`."""

    id: str
    scopes: frozenset[str] = frozenset({Scope.SEND, Scope.REDEEM})
    can_elicit: bool = False
    peer: str | None = None  # the connection's address (HTTP), for throttling when no `ip` is given
    local: bool = False  # the machine's own user (stdio, in process): sees every request and contact
    name: str | None = None  # an API key's name, where the channel knows it (the CLI)

    @property
    def decider(self) -> str:
        """How a decision records this caller: the key's id, and its name when known."""
        return self.id if self.name is None else f"{self.id} ({self.name})"


STDIO_CALLER = Caller("stdio", frozenset({Scope.SEND, Scope.REDEEM, Scope.CONTACTS_READ}), local=True)


async def lock_account(tx: Tx, mailbox: str) -> None:
    """Serialise transactions on one account (PostgreSQL; SQLite is serial already).

    `mailbox` is the canonical mailbox (`Deps.canon.mailbox`), so every spelling of one
    inbox takes the same lock. Lock order, kept by every transaction so two can never
    wait on each other: the account, then the requester's network, then token and
    outbox rows; the audit log's lock is taken by the first audit entry, so entries are
    written last.
    """
    await tx.lock(f"account:{mailbox}")


@dataclass(slots=True)
class Deps:
    store: Store
    clock: Clock
    policy: Policy
    kinds: EmailKinds
    signer: TokenSigner
    dispatcher: Dispatcher
    releaser: Releaser
    geo: GeoLocator
    rules: AbuseRules
    ttl_minutes: int
    approval_window: timedelta
    overseer_email: str | None = None
    canon: Canon = field(default_factory=Canon)  # the keys limits, locks and risk count on
    max_pending: int = 50  # emails one caller may have waiting for approval (RESET_MCP_MAX_PENDING_PER_CALLER)
    send_wait: float = 3.0  # RESET_MCP_SEND_WAIT_SECONDS
    directory: Directory | None = None  # with one, the recipient comes from it, never from the agent
    caller_sends_per_hour: int = 60
    answer_step: float = 0.0  # seconds; a directory reset is answered at a whole multiple of it

    async def audit(self, tx: Tx, actor: str, action: str, subject: str, now: datetime, **detail: Any) -> None:
        await tx.append_audit(at=now, actor=actor, action=action, subject=subject, detail=detail)

    def send_deadline(self) -> float:
        """When a call that starts sending now stops waiting for its emails (anyio's clock):
        `send_wait` from now, or earlier if the call's bound comes first (`bounds.answer_by`)."""
        until = anyio.current_time() + self.send_wait
        bound = answer_by()
        return until if bound is None else min(until, bound)

    async def deliver(self, rows: list[OutboxRow], *, until: float | None = None) -> DeliveryInfo | None:
        """The fast path: hand freshly released rows to the dispatcher, and report the first.

        The deliveries run in the dispatcher's task group, never in the caller's: the caller
        waits for them until `until` (a `send_deadline()`, shared by every `deliver` of one
        call; by default `send_wait` seconds from now) and no longer. A row whose delivery
        has not ended by then reports `sending`, and goes on; one that got no connection
        by then is given back to the worker.
        """
        until = self.send_deadline() if until is None else until
        left = max(0.0, until - anyio.current_time())
        tickets = [self.dispatcher.submit(row, slot_wait=left) for row in rows]
        if not tickets:
            return None
        for later in tickets[1:]:  # the others within the same wait, unreported
            await later.wait(max(0.0, until - anyio.current_time()))
        outcome: DeliveryOutcome = await tickets[0].wait(max(0.0, until - anyio.current_time()))
        return DeliveryInfo(
            backend=self.dispatcher.backend.name,
            status=outcome.status,
            elapsed_ms=outcome.elapsed_ms,
            attempts=rows[0].attempts,
            error=outcome.error,
        )

    def deliver_soon(self, rows: list[OutboxRow]) -> None:
        """Hand rows to the dispatcher and wait for none of them (a directory reset: the
        answer must not take longer for a known account than for an unknown one)."""
        for row in rows:
            self.dispatcher.submit(row, slot_wait=self.send_wait)
