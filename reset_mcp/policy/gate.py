"""The gate every outgoing email passes: the policy's decision, applied.

`gate()` is the only caller of `Releaser.release` for a new send, so no email reaches
the outbox, and so no email reaches a backend, without a recorded decision. It runs
inside the caller's transaction: the send record, its decision's audit entry, and the
outbox row (or the pending approval) commit together.

Two bounds keep one agent from flooding the humans: a caller may hold at most
`Deps.max_pending` emails waiting for approval (past that a held email is blocked, with
the reason); and the overseer's notices obey the policy's hourly cap per address
(`max_per_hour`, else NOTICES_PER_HOUR): past it a notice is recorded for the next
digest instead of sent (`flows/oversight_digest.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reset_mcp.deps import Deps
from reset_mcp.emails import oversight_digest, oversight_notice
from reset_mcp.ids import new_id
from reset_mcp.store import Tx
from reset_mcp.store.records import ApprovalRecord, ContactEvent, OutboxRow, SendRecord
from reset_mcp.vocab import Action, ApprovalStatus, Event, SendStatus

NOTICES_PER_HOUR = 10  # the overseer's notices an hour when the policy sets no max_per_hour
# Requesters that are reset-mcp itself (the password-changed notice, the automatic alert):
# the bound on pending approvals is for callers, whose floods these follow at most.
INTERNAL_REQUESTERS = frozenset({"system", "abuse-detector"})


@dataclass(slots=True)
class Gated:
    status: SendStatus  # queued | pending_approval | blocked | rejected
    reason: str | None = None
    approval_id: str | None = None
    rows: list[OutboxRow] = field(default_factory=list)
    expires_at: datetime | None = None
    send_id: str = ""


def summary_of(deps: Deps, send: SendRecord) -> str:
    """What the overseer reads first: our words only (a kind's label, an address we checked,
    a caller id we issued). What the requester gave is `facts_of`, shown apart as data."""
    return f"{deps.kinds[send.kind].label} email to {send.recipient}, requested by {send.requested_by}"[:500]


def facts_of(send: SendRecord) -> dict[str, str]:
    """What the requester gave (or the directory answered) for this email, kept as data."""
    p = send.payload
    ctx = p.get("context") or p.get("facts") or {}
    facts = {
        "user_id": send.user_id,
        "name": p.get("to_name"),
        "ip": ctx.get("ip"),
        "device": ctx.get("device"),
        "location": ctx.get("location"),
    }
    return {key: str(value) for key, value in facts.items() if value}


async def gate(deps: Deps, tx: Tx, send: SendRecord, now: datetime, *, confirmed: bool | None = None) -> Gated:
    policy = deps.policy
    cap = policy.recipients.max_per_hour
    # Per inbox: `a+1@x` and `a+2@x` share the policy's hourly cap. The count is read only
    # against that cap, so without one it is not read, and with one not past it.
    sent_last_hour = 0
    if cap is not None:
        hour_ago, mailbox = now - timedelta(hours=1), deps.canon.mailbox(send.recipient)
        sent_last_hour = await tx.count_events(Event.EMAIL_QUEUED, hour_ago, mailbox=mailbox, at_most=cap)
    decision = policy.decide(send.kind, send.recipient, sent_last_hour=sent_last_hour)
    action, reason = decision.action, decision.reason
    rejected = False
    if action == Action.CONFIRM:
        # A person with an `approve` key decides on our page (the tool points the client
        # there): held exactly as `gated`, whatever the agent's client answers.
        action = Action.HOLD
    elif action == Action.CONFIRM_IN_CLIENT:
        if confirmed is True:
            action, reason = Action.SEND, "confirmed by the user in the agent's client"
        elif confirmed is False:
            # Recorded as the policy's decision, answered no: the send ends `rejected`.
            action, reason, rejected = Action.BLOCK, "declined by the user in the agent's client", True
        else:
            action, reason = (
                Action.HOLD,
                "oversight mode confirm_in_client, but the client cannot ask the user: held for approval",
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

    if action == Action.HOLD and send.requested_by not in INTERNAL_REQUESTERS:
        held = await tx.count_pending_approvals(send.requested_by, deps.max_pending)
        if held >= deps.max_pending:
            reason = (
                f"held for approval, but this caller already has {held} emails waiting for a decision "
                "(RESET_MCP_MAX_PENDING_PER_CALLER); ask the overseer to decide them first"
            )
            send.status, send.reason = SendStatus.BLOCKED, reason
            await tx.insert_send(send)
            detail.update(outcome="block", reason=reason, rule="max_pending_per_caller")
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
            facts=facts_of(send),
        )
        await tx.insert_approval(approval)
        await deps.audit(tx, send.requested_by, "decision", send.id, now, approval_id=approval.id, **detail)
        rows = await _notify(
            deps, tx, send, oversight_notice.HELD, approval.summary, now, approval.id, expires, given=approval.facts
        )
        return Gated(SendStatus.PENDING_APPROVAL, reason, approval.id, rows, send_id=send.id)

    send.status, send.reason = SendStatus.QUEUED, None
    await tx.insert_send(send)
    released = await deps.releaser.release(tx, send, now)
    await deps.audit(tx, send.requested_by, "decision", send.id, now, **detail)  # last: see lock_account
    rows = [released.row]
    if action == Action.SEND_AND_NOTIFY:
        rows += await _notify(deps, tx, send, oversight_notice.SENT, summary_of(deps, send), now, given=facts_of(send))
    return Gated(SendStatus.QUEUED, None, None, rows, released.expires_at, send.id)


def notice_cap(deps: Deps) -> int:
    return deps.policy.recipients.max_per_hour or NOTICES_PER_HOUR


async def _notify(
    deps: Deps,
    tx: Tx,
    send: SendRecord,
    decision: str,
    summary: str,
    now: datetime,
    approval_id: str | None = None,
    expires_at: datetime | None = None,
    *,
    given: dict[str, str] | None = None,
) -> list[OutboxRow]:
    """The overseer's notice about `send`, within the hourly cap; past it, recorded for the
    digest (no row). Counted under a lock of its own, taken after the account's. `given`:
    what the requester gave, which the notice shows apart, as data."""
    overseer = deps.overseer_email
    if not overseer:
        return []
    mailbox = deps.canon.mailbox(overseer)
    await tx.lock(f"notices:{mailbox}")
    if await tx.count_events(Event.EMAIL_QUEUED, now - timedelta(hours=1), mailbox=mailbox) < notice_cap(deps):
        row = await deps.releaser.notice(
            tx,
            overseer=overseer,
            about=send,
            decision=decision,
            summary=summary,
            now=now,
            approval_id=approval_id,
            expires_at=expires_at,
            given=given,
        )
        return [row]
    item = oversight_digest.DigestItem(
        send.kind, send.recipient, decision, send.requested_by, now, approval_id, expires_at
    )
    await tx.insert_event(
        ContactEvent(
            email=overseer,
            event_type=Event.NOTICE_DEFERRED,
            created_at=now,
            metadata={"request_id": send.id, "item": item.dump()},
            mailbox=mailbox,
        )
    )
    return []
