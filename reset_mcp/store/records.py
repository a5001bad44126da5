"""Rows as the domain sees them. Times are aware UTC datetimes; JSON columns are dicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reset_mcp.ids import new_id
from reset_mcp.vocab import ApprovalStatus, OutboxStatus, SendStatus

# The statuses as tuples of strings, for SQL built from constant lists (purge) and messages.
SEND_STATUSES = tuple(SendStatus)
FINAL_SEND_STATUSES = tuple(s for s in SendStatus if s.final)
OUTBOX_STATUSES = tuple(OutboxStatus)
FINAL_OUTBOX_STATUSES = tuple(s for s in OutboxStatus if s.final)
APPROVAL_STATUSES = tuple(ApprovalStatus)


@dataclass(slots=True)
class SendRecord:
    """One request to send an email, whatever became of it."""

    id: str
    kind: str
    recipient: str
    user_id: str | None
    status: str
    reason: str | None
    requested_by: str
    decision: str  # the policy's action: send | send_and_notify | hold | confirm | block | rate_limited
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(
        cls, kind: str, recipient: str, user_id: str | None, requested_by: str, payload: dict[str, Any], now: datetime
    ) -> SendRecord:
        """A request to send one email, before the gate decides on it."""
        return cls(
            id=new_id("req"),
            kind=kind,
            recipient=recipient,
            user_id=user_id,
            status=SendStatus.QUEUED,
            reason=None,
            requested_by=requested_by,
            decision="",
            created_at=now,
            updated_at=now,
            payload=payload,
        )


@dataclass(slots=True)
class TokenRecord:
    jti_hash: str
    send_id: str
    user_id: str
    email: str
    kid: str
    issued_at: datetime
    expires_at: datetime
    consumed_at: datetime | None = None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None
    # `TokenSigner.row_mac` of the row's identity; None on rows written before schema
    # version 5 (see `reset_mcp.token_rows.seal_unsealed`).
    mac: str | None = None


@dataclass(slots=True)
class OutboxRow:
    """What is needed to render and deliver one email; never a usable token or link."""

    id: str
    send_id: str
    kind: str
    recipient: str
    message_id: str
    status: str
    created_at: datetime
    next_attempt_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    not_after: datetime | None = None  # a reset email is pointless once its token expired
    last_error: str | None = None
    provider_message_id: str | None = None
    sent_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


@dataclass(slots=True)
class ApprovalRecord:
    id: str
    send_id: str
    kind: str
    recipient: str
    summary: str
    requested_by: str
    reason: str
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    # What the requester gave (user id, name, ip, device, location), kept apart from the
    # summary (our words only) so every page shows it quoted, as data.
    facts: dict[str, Any] | None = None


@dataclass(slots=True)
class ContactEvent:
    email: str
    event_type: str
    created_at: datetime
    user_id: str | None = None
    ip: str | None = None
    device: str | None = None  # family key, e.g. "Chrome/Windows"
    country: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    # What limits and risk count on (`reset_mcp.canonical`): the canonical mailbox, set by
    # the writer (a row without one is keyed by its address as written), and the host
    # network of `ip` (the store derives it).
    mailbox: str | None = None
    net: str | None = None


@dataclass(slots=True)
class ContactFacts:
    """A mailbox's security facts (`reset_mcp.contact_facts`), one row per mailbox."""

    mailbox: str
    facts: dict[str, Any]
    updated_at: datetime


@dataclass(slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(slots=True)
class ApiKeyRecord:
    id: str
    name: str
    scopes: tuple[str, ...]
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AdminSessionRecord:
    """A signed-in overseer's session on the approvals page; `id` is a hash of its cookie."""

    id: str
    key_id: str
    created_at: datetime
    expires_at: datetime


@dataclass(slots=True)
class IdempotencyRecord:
    """A caller's idempotency key: the arguments it first came with, and the answer given."""

    caller_id: str
    key: str
    tool: str
    args_hash: str
    created_at: datetime
    answer: dict[str, Any] | None = None  # None while the first call is still running
