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
from reset_mcp.emails import oversight_notice
from reset_mcp.ids import new_id
from reset_mcp.store import Tx
from reset_mcp.store.records import ApprovalRecord, OutboxRow, SendRecord
from reset_mcp.vocab import Action, ApprovalStatus, Event, SendStatus


@dataclass(slots=True)
class Gated:
    status: SendStatus  # queued | pending_approval | blocked | rejected
    reason: str | None = None
    approval_id: str | None = None
    rows: list[OutboxRow] = field(default_factory=list)
    expires_at: datetime | None = None
    send_id: str = ""


def summary_of(deps: Deps, send: SendRecord) -> str:
    p = send.payload
    ctx = p.get("context") or {}
    who = f" (user {send.user_id})" if send.user_id else ""
    origin = f" from {ctx.get('ip')} ({ctx.get('device')}, {ctx.get('location')})" if ctx else ""
    return f"{deps.kinds[send.kind].label} email to {send.recipient}{who}, requested by {send.requested_by}{origin}"[
        :500
    ]


async def gate(deps: Deps, tx: Tx, send: SendRecord, now: datetime, *, confirmed: bool | None = None) -> Gated:
    hour_ago = now - timedelta(hours=1)
    # Per inbox: `a+1@x` and `a+2@x` share the policy's hourly cap.
    sent_last_hour = await tx.count_events(Event.EMAIL_QUEUED, hour_ago, mailbox=deps.canon.mailbox(send.recipient))
    decision = deps.policy.decide(send.kind, send.recipient, sent_last_hour=sent_last_hour)
    action, reason = decision.action, decision.reason
    rejected = False
    if action == Action.CONFIRM:
        if confirmed is True:
            action, reason = Action.SEND, "confirmed by the user in the agent's client"
        elif confirmed is False:
            # Recorded as the policy's `confirm` decision, answered no: the send ends `rejected`.
            action, reason, rejected = Action.BLOCK, "declined by the user in the agent's client", True
        else:
            action, reason = (
                Action.HOLD,
                "oversight mode confirm, but the client cannot ask the user: held for approval",
            )
    send.decision = decision.action
    detail = {
        "kind": send.kind,
        "recipient": send.recipient,
        "mode": decision.mode,
        "outcome": "reject" if rejected else action,
        "reason": reason,
        "rule": decision.rule,
    }

    if action == Action.BLOCK:
        send.status, send.reason = (SendStatus.REJECTED if rejected else SendStatus.BLOCKED), reason
        await tx.insert_send(send)
        await deps.audit(tx, send.requested_by, "decision", send.id, now, **detail)
        return Gated(send.status, reason, send_id=send.id)

    if action == Action.HOLD:
        send.status, send.reason = SendStatus.PENDING_APPROVAL, reason
        expires = now + deps.approval_window
        send.expires_at = expires
        await tx.insert_send(send)
        approval = ApprovalRecord(
            id=new_id("apr"),
            send_id=send.id,
            kind=send.kind,
            recipient=send.recipient,
            summary=summary_of(deps, send),
            requested_by=send.requested_by,
            reason=reason,
            status=ApprovalStatus.PENDING,
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
                    decision=oversight_notice.HELD,
                    summary=approval.summary,
                    now=now,
                    approval_id=approval.id,
                    expires_at=expires,
                )
            )
        return Gated(SendStatus.PENDING_APPROVAL, reason, approval.id, rows, send_id=send.id)

    send.status, send.reason = SendStatus.QUEUED, None
    await tx.insert_send(send)
    released = await deps.releaser.release(tx, send, now)
    await deps.audit(tx, send.requested_by, "decision", send.id, now, **detail)  # last: see lock_account
    rows = [released.row]
    if action == Action.SEND_AND_NOTIFY and deps.overseer_email:
        rows.append(
            await deps.releaser.notice(
                tx,
                overseer=deps.overseer_email,
                about=send,
                decision=oversight_notice.SENT,
                summary=summary_of(deps, send),
                now=now,
            )
        )
    return Gated(SendStatus.QUEUED, None, None, rows, released.expires_at, send.id)
