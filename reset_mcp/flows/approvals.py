"""The human side of oversight: list, approve, reject and expire held emails.

None of this is reachable with an agent's `send` credentials: the MCP tools an agent
sees are read-only views, and `approve`/`reject` refuse a decider whose identity is the
one that requested the send. For a reset, the token is minted only on approval, so
the link gets its full lifetime however long the approval took.

An agent's key sees only the sends it requested itself (its pending ones, a request's
status); the overseer (`approve`) and the local user see every one.
"""

from __future__ import annotations

from datetime import datetime

from reset_mcp.deps import Caller, Deps, lock_account
from reset_mcp.errors import ConflictError, NotFoundError, PermissionDeniedError
from reset_mcp.flows import paging
from reset_mcp.models import ApprovalDecision, ApprovalView, DeliveryView, PendingSends, SendStatusView
from reset_mcp.store import Tx
from reset_mcp.store.records import ApprovalRecord, OutboxRow, SendRecord
from reset_mcp.validation import identifier, single_line
from reset_mcp.vocab import ApprovalStatus, OutboxStatus, Scope, SendStatus


def approval_view(a: ApprovalRecord) -> ApprovalView:
    return ApprovalView(
        id=a.id,
        request_id=a.send_id,
        kind=a.kind,
        recipient=a.recipient,
        summary=a.summary,
        requested_by=a.requested_by,
        reason=a.reason,
        status=a.status,
        created_at=a.created_at,
        expires_at=a.expires_at,
        decided_by=a.decided_by,
        decided_at=a.decided_at,
        decision_reason=a.decision_reason,
    )


def delivery_view(r: OutboxRow) -> DeliveryView:
    return DeliveryView(
        outbox_id=r.id,
        kind=r.kind,
        recipient=r.recipient,
        status=r.status,
        attempts=r.attempts,
        next_attempt_at=r.next_attempt_at if r.status == OutboxStatus.PENDING else None,
        last_error=r.last_error,
        sent_at=r.sent_at,
        message_id=r.message_id,
        provider_message_id=r.provider_message_id,
    )


def send_status(send: SendRecord, approval: ApprovalRecord | None, rows: list[OutboxRow]) -> SendStatusView:
    return SendStatusView(
        request_id=send.id,
        kind=send.kind,
        recipient=send.recipient,
        status=send.status,
        reason=send.reason,
        decision=send.decision,
        requested_by=send.requested_by,
        created_at=send.created_at,
        updated_at=send.updated_at,
        expires_at=send.expires_at,
        approval=approval_view(approval) if approval else None,
        deliveries=[delivery_view(r) for r in rows],
    )


def sees_all_sends(caller: Caller) -> bool:
    """May see sends other callers requested: the overseer and the local user."""
    return caller.local or Scope.APPROVE in caller.scopes


class ApprovalDesk:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def list_pending(
        self,
        limit: int = 100,
        *,
        cursor: str | None = None,
        requested_by: str | None = None,
        caller: Caller | None = None,
    ) -> PendingSends:
        """A page of held emails, newest first; `requested_by`: only those this caller asked for.
        `next_cursor` continues the same listing (a cursor carries its filter), None at the end.
        A `caller` that does not see all sends (`sees_all_sends`) gets only its own, whatever
        a cursor it made up says."""
        after = None
        if cursor is not None:
            position = paging.decode(cursor)
            after, requested_by = (position.created_at, position.id), position.requested_by
        if caller is not None and not sees_all_sends(caller):
            requested_by = caller.id
        await self.expire_due()
        async with self.deps.store.transaction() as tx:
            rows = await tx.list_approvals(ApprovalStatus.PENDING, limit + 1, requested_by=requested_by, after=after)
        page, more = rows[:limit], len(rows) > limit
        next_cursor = paging.encode(paging.Position(page[-1].created_at, page[-1].id, requested_by)) if more else None
        return PendingSends(count=len(page), pending=[approval_view(a) for a in page], next_cursor=next_cursor)

    async def list(self, status: str | None = None, limit: int = 100) -> list[ApprovalView]:
        await self.expire_due()
        async with self.deps.store.transaction() as tx:
            return [approval_view(a) for a in await tx.list_approvals(status, limit)]

    async def get(self, approval_id: str) -> ApprovalView:
        approval_id = identifier(approval_id, "approval_id", 64)
        async with self.deps.store.transaction() as tx:
            approval = await tx.get_approval(approval_id)
        if approval is None:
            raise NotFoundError(f"no approval {approval_id!r}")
        return approval_view(approval)

    async def send_status(self, request_id: str, caller: Caller | None = None) -> SendStatusView:
        """A request's decision and deliveries; another caller's request reads as missing
        to a `caller` that does not see all (no hint that it exists)."""
        # Checked before any query: PostgreSQL refuses text with NUL, which would read
        # as "database unavailable" instead of the caller's mistake.
        request_id = identifier(request_id, "request_id", 64)
        await self.expire_due()
        async with self.deps.store.transaction() as tx:
            send = await tx.get_send(request_id)
            hidden = send is not None and caller is not None and not sees_all_sends(caller)
            if send is None or (hidden and send.requested_by != caller.id):  # type: ignore[union-attr]
                raise NotFoundError(f"no request {request_id!r}")
            approval = await tx.approval_for_send(request_id)
            rows = await tx.outbox_for_send(request_id)
        return send_status(send, approval, rows)

    async def approve(self, approval_id: str, caller: Caller, reason: str | None = None) -> ApprovalDecision:
        return await self._decide(approval_id, caller, ApprovalStatus.APPROVED, reason)

    async def reject(self, approval_id: str, caller: Caller, reason: str | None = None) -> ApprovalDecision:
        return await self._decide(approval_id, caller, ApprovalStatus.REJECTED, reason)

    async def _decide(
        self, approval_id: str, caller: Caller, status: ApprovalStatus, reason: str | None
    ) -> ApprovalDecision:
        d = self.deps
        if Scope.APPROVE not in caller.scopes:
            # Every channel checks this already; the desk checks again so no new entry point can forget.
            raise PermissionDeniedError("deciding an approval needs the 'approve' scope")
        approval_id = identifier(approval_id, "approval_id", 64)
        reason = single_line(reason, "reason", 500)
        await self.expire_due()
        rows: list[OutboxRow] = []
        async with d.store.transaction() as tx:
            approval = await tx.get_approval(approval_id)
            if approval is None:
                raise NotFoundError(f"no approval {approval_id!r}")
            if approval.requested_by == caller.id:
                raise PermissionDeniedError("an approval cannot be decided with the credentials that requested it")
            await lock_account(tx, d.canon.mailbox(approval.recipient))
            now = d.clock.now()
            # The window is checked here, not left to the expiry job: that job ends at most
            # a batch at a time, and an overdue approval must never be granted meanwhile.
            late = approval.expires_at <= now and await self._expire(tx, approval, now)  # committed below
            if not late:
                if not await tx.decide_approval(approval_id, status=status, by=caller.id, reason=reason, now=now):
                    current = await tx.get_approval(approval_id)
                    state = current.status if current else "decided"
                    raise ConflictError(f"approval {approval_id} was already {state}")
                send = await tx.get_send(approval.send_id)
                assert send is not None
                if status == ApprovalStatus.APPROVED:
                    await tx.update_send(send.id, SendStatus.QUEUED, None, now)
                    rows.append((await d.releaser.release(tx, send, now)).row)
                else:
                    await tx.update_send(send.id, SendStatus.REJECTED, reason or "rejected by the overseer", now)
                await d.audit(tx, caller.id, f"approval_{status}", send.id, now, approval_id=approval_id, reason=reason)
        if late:
            ended = approval.expires_at.isoformat()
            raise ConflictError(f"approval {approval_id} expired: its window ended at {ended}; nothing was sent")
        delivery = await d.deliver(rows)
        return ApprovalDecision(approval_id=approval_id, status=status, request_id=approval.send_id, delivery=delivery)

    async def expire_due(self) -> int:
        """End approvals that waited past their window: `expired`, and nothing is sent."""
        d = self.deps
        now = d.clock.now()
        async with d.store.transaction() as tx:
            due = await tx.due_approval_expiries(now, 100)
            for approval in due:
                await self._expire(tx, approval, now)
        return len(due)

    async def _expire(self, tx: Tx, approval: ApprovalRecord, now: datetime) -> bool:
        """Mark a pending approval expired (and its request); False if it was decided already."""
        d = self.deps
        if not await tx.decide_approval(
            approval.id, status=ApprovalStatus.EXPIRED, by="system", reason="approval window ended", now=now
        ):
            return False
        await tx.update_send(approval.send_id, SendStatus.EXPIRED, "no decision within the approval window", now)
        await d.audit(tx, "system", "approval_expired", approval.send_id, now, approval_id=approval.id)
        return True
