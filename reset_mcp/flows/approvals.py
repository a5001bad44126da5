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
from reset_mcp.flows.views import approval_view, send_status
from reset_mcp.models import ApprovalDecision, ApprovalView, PendingSends, SendStatusView
from reset_mcp.store import Tx
from reset_mcp.store.records import ApprovalRecord, OutboxRow
from reset_mcp.validation import identifier, single_line
from reset_mcp.vocab import ApprovalStatus, Scope, SendStatus


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

    # What an agent (`send`) may see ----------------------------------------------------
    def _hidden_from(self, caller: Caller, kind: str) -> bool:
        # With a directory, an email to an account tells that the account exists and names
        # its address: the overseer's to see (and the local user's), never an agent's, even
        # for a request it made itself (an unknown account's request has no send to show).
        found = self.deps.kinds.get(kind)
        account_facing = not (found is not None and found.to_overseer)
        return self.deps.directory is not None and account_facing and not sees_all_sends(caller)

    async def agent_pending(
        self, limit: int = 100, *, caller: Caller, cursor: str | None = None, requested_by: str | None = None
    ) -> PendingSends:
        page = await self.list_pending(limit, cursor=cursor, requested_by=requested_by, caller=caller)
        shown = [a for a in page.pending if not self._hidden_from(caller, a.kind)]
        return page.model_copy(update={"count": len(shown), "pending": shown})

    async def agent_send_status(self, request_id: str, caller: Caller) -> SendStatusView:
        status = await self.send_status(request_id, caller)
        if self._hidden_from(caller, status.kind):
            raise NotFoundError(f"no request {identifier(request_id, 'request_id', 64)!r}")  # as for one never made
        return status

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
                if not await tx.decide_approval(approval_id, status=status, by=caller.decider, reason=reason, now=now):
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
                await d.audit(
                    tx, caller.id, f"approval_{status}", send.id, now, approval_id=approval_id, reason=reason,
                    decider=caller.decider,
                )  # fmt: skip
        if late:
            ended = approval.expires_at.isoformat()
            raise ConflictError(f"approval {approval_id} expired: its window ended at {ended}; nothing was sent")
        delivery = await d.deliver(rows)
        return ApprovalDecision(approval_id=approval_id, status=status, request_id=approval.send_id, delivery=delivery)

    async def withdraw(self, approval_id: str, caller: Caller, reason: str) -> bool:
        """The requester takes back its own held send (its client declined to open the
        approvals page): rejected, nothing sent. Only the requester's own, only while
        pending; False otherwise. Needs no `approve` scope: it can only stop a send."""
        d = self.deps
        async with d.store.transaction() as tx:
            approval = await tx.get_approval(approval_id)
            if approval is None or approval.requested_by != caller.id:
                return False
            await lock_account(tx, approval.recipient)
            now = d.clock.now()
            if not await tx.decide_approval(approval_id, status=ApprovalStatus.REJECTED, by=caller.id,
                                            reason=reason, now=now):  # fmt: skip
                return False
            await tx.update_send(approval.send_id, SendStatus.REJECTED, reason, now)
            await d.audit(tx, caller.id, "approval_withdrawn", approval.send_id, now, approval_id=approval_id,
                          reason=reason)  # fmt: skip
        return True

    async def record_page_offer(self, approval_id: str, caller: Caller, outcome: str) -> None:
        """The audit's note that the client was pointed at the approvals page, and its answer
        (accept means only that the user agreed to open it)."""
        async with self.deps.store.transaction() as tx:
            approval = await tx.get_approval(approval_id)
            subject = approval.send_id if approval is not None else approval_id
            await self.deps.audit(tx, caller.id, "approvals_page_offered", subject, self.deps.clock.now(),
                                  approval_id=approval_id, client_answer=outcome)  # fmt: skip

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
