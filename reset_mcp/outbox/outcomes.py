"""What a delivery outcome changes besides the outbox row: the send's status, the audit
log and the contact's history, written in the same transaction as the row's new status."""

from __future__ import annotations

from datetime import datetime

from reset_mcp.store import Tx
from reset_mcp.store.records import ContactEvent, OutboxRow

# Outbox status -> the send status tools report.
SEND_STATUS_FOR = {
    "sent": "sent",
    "pending": "queued",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}


async def record_outcome(tx: Tx, row: OutboxRow, status: str, error: str | None, now: datetime) -> None:
    await tx.update_send(row.send_id, SEND_STATUS_FOR[status], error, now)
    if status == "pending":
        return  # a retry is not an outcome yet; the audit records final results only
    await tx.append_audit(
        at=now,
        actor="dispatcher",
        action=f"delivery_{status}",
        subject=row.send_id,
        detail={
            "outbox_id": row.id,
            "kind": row.kind,
            "recipient": row.recipient,
            "attempts": row.attempts,
            "error": error,
        },
    )
    if status == "sent" and row.kind != "oversight_notice":
        await tx.insert_event(
            ContactEvent(
                email=row.recipient,
                event_type="email_delivered",
                created_at=now,
                metadata={"kind": row.kind, "request_id": row.send_id},
            )
        )
