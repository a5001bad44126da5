"""Pieces both SQL stores share: time and JSON conversion, row mapping, the schema's shape.

Times are stored as float seconds since the epoch (REAL / DOUBLE PRECISION) so
comparisons are plain number comparisons on both databases and rows round-trip exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from reset_mcp.canonical import net_of_stored
from reset_mcp.jsontext import encoder
from reset_mcp.store.records import (
    ApiKeyRecord,
    ApprovalRecord,
    AuditEntry,
    ContactEvent,
    OutboxRow,
    SendRecord,
    TokenRecord,
)


def ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def req_dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


# One encoder for every dump, built once (`jsontext`): a reset dumps about ten payloads.
_ENCODE = encoder(sort_keys=True, default=str)


def dump(value: Mapping[str, Any]) -> str:
    return _ENCODE(value)


def load(value: str | None) -> dict[str, Any]:
    return json.loads(value) if value else {}


Row = Mapping[str, Any]

SEND_COLS = (
    "id, kind, recipient, user_id, status, reason, requested_by, decision, created_at, updated_at, expires_at, payload"
)
TOKEN_COLS = (
    "jti_hash, send_id, user_id, email, kid, issued_at, expires_at, consumed_at, revoked_at, revoke_reason, mac"  # noqa: S105
)
OUTBOX_COLS = (
    "id, send_id, kind, recipient, message_id, status, created_at, next_attempt_at, payload, attempts, "
    "not_after, last_error, provider_message_id, sent_at, lease_owner, lease_until"
)
APPROVAL_COLS = (
    "id, send_id, kind, recipient, summary, requested_by, reason, status, created_at, expires_at, "
    "decided_by, decided_at, decision_reason, facts"
)
EVENT_COLS = "id, email, user_id, event_type, ip, device, country, metadata, created_at, mailbox, net"
AUDIT_COLS = "seq, at, actor, action, subject, detail, prev_hash, hash"
KEY_COLS = "id, name, scopes, secret_hash, created_at, revoked_at"


def send_from(r: Row) -> SendRecord:
    return SendRecord(
        id=r["id"], kind=r["kind"], recipient=r["recipient"], user_id=r["user_id"], status=r["status"],
        reason=r["reason"], requested_by=r["requested_by"], decision=r["decision"],
        created_at=req_dt(r["created_at"]), updated_at=req_dt(r["updated_at"]),
        expires_at=dt(r["expires_at"]), payload=load(r["payload"]),
    )  # fmt: skip


def send_values(s: SendRecord) -> tuple[Any, ...]:
    return (
        s.id, s.kind, s.recipient, s.user_id, s.status, s.reason, s.requested_by, s.decision,
        ts(s.created_at), ts(s.updated_at), ts(s.expires_at), dump(s.payload),
    )  # fmt: skip


def token_from(r: Row) -> TokenRecord:
    return TokenRecord(
        jti_hash=r["jti_hash"], send_id=r["send_id"], user_id=r["user_id"], email=r["email"], kid=r["kid"],
        issued_at=req_dt(r["issued_at"]), expires_at=req_dt(r["expires_at"]),
        consumed_at=dt(r["consumed_at"]), revoked_at=dt(r["revoked_at"]), revoke_reason=r["revoke_reason"],
        mac=r["mac"],
    )  # fmt: skip


def token_values(t: TokenRecord) -> tuple[Any, ...]:
    return (
        t.jti_hash, t.send_id, t.user_id, t.email, t.kid, ts(t.issued_at), ts(t.expires_at),
        ts(t.consumed_at), ts(t.revoked_at), t.revoke_reason, t.mac,
    )  # fmt: skip


def outbox_from(r: Row) -> OutboxRow:
    return OutboxRow(
        id=r["id"], send_id=r["send_id"], kind=r["kind"], recipient=r["recipient"], message_id=r["message_id"],
        status=r["status"], created_at=req_dt(r["created_at"]), next_attempt_at=req_dt(r["next_attempt_at"]),
        payload=load(r["payload"]), attempts=r["attempts"], not_after=dt(r["not_after"]),
        last_error=r["last_error"], provider_message_id=r["provider_message_id"], sent_at=dt(r["sent_at"]),
        lease_owner=r["lease_owner"], lease_until=dt(r["lease_until"]),
    )  # fmt: skip


def outbox_values(o: OutboxRow) -> tuple[Any, ...]:
    return (
        o.id, o.send_id, o.kind, o.recipient, o.message_id, o.status, ts(o.created_at), ts(o.next_attempt_at),
        dump(o.payload), o.attempts, ts(o.not_after), o.last_error, o.provider_message_id, ts(o.sent_at),
        o.lease_owner, ts(o.lease_until),
    )  # fmt: skip


def approval_from(r: Row) -> ApprovalRecord:
    return ApprovalRecord(
        id=r["id"], send_id=r["send_id"], kind=r["kind"], recipient=r["recipient"], summary=r["summary"],
        requested_by=r["requested_by"], reason=r["reason"], status=r["status"],
        created_at=req_dt(r["created_at"]), expires_at=req_dt(r["expires_at"]), decided_by=r["decided_by"],
        decided_at=dt(r["decided_at"]), decision_reason=r["decision_reason"],
        facts=load(r["facts"]) if r["facts"] else None,
    )  # fmt: skip


def approval_values(a: ApprovalRecord) -> tuple[Any, ...]:
    return (
        a.id, a.send_id, a.kind, a.recipient, a.summary, a.requested_by, a.reason, a.status,
        ts(a.created_at), ts(a.expires_at), a.decided_by, ts(a.decided_at), a.decision_reason,
        dump(a.facts) if a.facts is not None else None,
    )  # fmt: skip


def event_from(r: Row) -> ContactEvent:
    return ContactEvent(
        id=r["id"], email=r["email"], user_id=r["user_id"], event_type=r["event_type"], ip=r["ip"],
        device=r["device"], country=r["country"], metadata=load(r["metadata"]), created_at=req_dt(r["created_at"]),
        mailbox=r["mailbox"], net=r["net"],
    )  # fmt: skip


def event_values(e: ContactEvent) -> tuple[Any, ...]:
    return (
        e.email, e.user_id, e.event_type, e.ip, e.device, e.country, dump(e.metadata), ts(e.created_at),
        e.mailbox or e.email, e.net or net_of_stored(e.ip),
    )  # fmt: skip


def audit_from(r: Row) -> AuditEntry:
    return AuditEntry(
        seq=r["seq"], at=req_dt(r["at"]), actor=r["actor"], action=r["action"], subject=r["subject"],
        detail=load(r["detail"]), prev_hash=r["prev_hash"], hash=r["hash"],
    )  # fmt: skip


def key_from(r: Row) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=r["id"], name=r["name"], scopes=tuple(r["scopes"].split()), secret_hash=r["secret_hash"],
        created_at=req_dt(r["created_at"]), revoked_at=dt(r["revoked_at"]),
    )  # fmt: skip


def key_values(k: ApiKeyRecord) -> tuple[Any, ...]:
    return (k.id, k.name, " ".join(k.scopes), k.secret_hash, ts(k.created_at), ts(k.revoked_at))
