"""What a delivery outcome changes besides the outbox row: the send's status, the audit
log and the contact's history, written in the same transaction as the row's new status."""

from __future__ import annotations

from datetime import datetime

from reset_mcp.store import Tx
from reset_mcp.store.records import ContactEvent, OutboxRow
from reset_mcp.vocab import Event, OutboxStatus


async def record_outcome(
    tx: Tx, row: OutboxRow, status: OutboxStatus, error: str | None, now: datetime, *, to_overseer: bool, mailbox: str
) -> None:
    """`to_overseer`: the overseer's own mail is no part of the recipient's contact history;
    `mailbox`: the recipient's canonical mailbox."""
    await tx.update_send(row.send_id, status.send_status, error, now)
    if status == OutboxStatus.PENDING:
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
    if status == OutboxStatus.SENT and not to_overseer:
        await tx.insert_event(
            ContactEvent(
                email=row.recipient,
                event_type=Event.EMAIL_DELIVERED,
                created_at=now,
                metadata={"kind": row.kind, "request_id": row.send_id},
                mailbox=mailbox,
            )
        )
