"""The gate every outgoing email passes: the policy's decision, applied.

`gate()` is the only caller of `Releaser.release` for a new send, so no email reaches
the outbox, and so no email reaches a backend, without a recorded decision. It runs
inside the caller's transaction: the send record, its decision's audit entry, and the
outbox row (or the pending approval) commit together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reset_mcp.deps import Deps
from reset_mcp.ids import new_id
from reset_mcp.outbox.release import QUEUED_EVENT
from reset_mcp.store import Tx
from reset_mcp.store.records import ApprovalRecord, OutboxRow, SendRecord


@dataclass(slots=True)
class Gated:
    status: str  # queued | pending_approval | blocked | rejected
    reason: str | None = None
    approval_id: str | None = None
    rows: list[OutboxRow] = field(default_factory=list)
    expires_at: datetime | None = None
    send_id: str = ""


def summary_of(send: SendRecord) -> str:
    p = send.payload
    ctx = p.get("context") or {}
    who = f" (user {send.user_id})" if send.user_id else ""
    origin = f" from {ctx.get('ip')} ({ctx.get('device')}, {ctx.get('location')})" if ctx else ""
    what = {
        "password_reset": "Password reset email",
        "security_alert": "Security alert",
        "password_changed": "Password-changed notice",
    }.get(send.kind, send.kind)
    return f"{what} to {send.recipient}{who}, requested by {send.requested_by}{origin}"[:500]


async def gate(deps: Deps, tx: Tx, send: SendRecord, now: datetime, *, confirmed: bool | None = None) -> Gated:
    hour_ago = now - timedelta(hours=1)
    sent_last_hour = await tx.count_events(QUEUED_EVENT, hour_ago, email=send.recipient)
    decision = deps.policy.decide(send.kind, send.recipient, sent_last_hour=sent_last_hour)
    action, reason = decision.action, decision.reason
    if action == "confirm":
        if confirmed is True:
            action, reason = "send", "confirmed by the user in the agent's client"
        elif confirmed is False:
            action, reason = "reject", "declined by the user in the agent's client"
        else:
            action, reason = "hold", "oversight mode confirm, but the client cannot ask the user: held for approval"
    send.decision = decision.action
    detail = {
        "kind": send.kind,
        "recipient": send.recipient,
        "mode": decision.mode,
        "outcome": action,
        "reason": reason,
        "rule": decision.rule,
    }

    if action in ("block", "reject"):
        send.status, send.reason = ("blocked" if action == "block" else "rejected"), reason
        await tx.insert_send(send)
        await deps.audit(tx, send.requested_by, "decision", send.id, now, **detail)
        return Gated(send.status, reason, send_id=send.id)

    if action == "hold":
        send.status, send.reason = "pending_approval", reason
        expires = now + deps.approval_window
        send.expires_at = expires
        await tx.insert_send(send)
        approval = ApprovalRecord(
            id=new_id("apr"),
            send_id=send.id,
            kind=send.kind,
            recipient=send.recipient,
            summary=summary_of(send),
            requested_by=send.requested_by,
            reason=reason,
            status="pending",
            created_at=now,
            expires_at=expires,
        )
        await tx.insert_approval(approval)
        await deps.audit(tx, send.requested_by, "decision", send.id, now, approval_id=approval.id, **detail)
        rows = []
        if deps.overseer_email:
            rows.append(
                await deps.releaser.notice(
                    tx,
                    overseer=deps.overseer_email,
                    about=send,
                    decision="held",
                    summary=approval.summary,
                    now=now,
                    approval_id=approval.id,
                    expires_at=expires,
                )
            )
        return Gated("pending_approval", reason, approval.id, rows, send_id=send.id)

    send.status, send.reason = "queued", None
    await tx.insert_send(send)
    released = await deps.releaser.release(tx, send, now)
    await deps.audit(tx, send.requested_by, "decision", send.id, now, **detail)  # last: see lock_account
    rows = [released.row]
    if action == "send_and_notify" and deps.overseer_email:
        rows.append(
            await deps.releaser.notice(
                tx,
                overseer=deps.overseer_email,
                about=send,
                decision="sent",
                summary=summary_of(send),
                now=now,
            )
        )
    return Gated("queued", None, None, rows, released.expires_at, send.id)
