"""The overseer's reads and the outbox's administration: the approvals page, the audit
log, `/metrics` gauges and `reset-mcp outbox`.

Deciding an approval is `flows/approvals.py`; this module only reads, records a sign-in,
and re-queues a failed row.
"""

from __future__ import annotations

from dataclasses import dataclass

from reset_mcp.audit import ChainReport, verify_chain
from reset_mcp.deps import Deps
from reset_mcp.errors import NotFoundError
from reset_mcp.flows.approvals import ApprovalDesk
from reset_mcp.models import ApprovalView
from reset_mcp.store.records import ApiKeyRecord, ApprovalRecord, AuditEntry, OutboxRow, SendRecord
from reset_mcp.vocab import ApprovalStatus

AUDIT_PAGE = 5000  # entries a query while verifying: a long log never sits in one query
PENDING_CAP = 100_000  # pending approvals counted for /metrics


@dataclass(frozen=True, slots=True)
class PendingPage:
    """What the approvals page shows: held emails with their requests, recent audit entries."""

    pending: list[tuple[ApprovalView, SendRecord | None]]
    audit: list[AuditEntry]
    decided: ApprovalRecord | None  # the approval just decided, when the page names one


class AdminDesk:
    def __init__(self, deps: Deps, approvals: ApprovalDesk) -> None:
        self.deps = deps
        self.approvals = approvals

    # the approvals page ----------------------------------------------------------------
    async def pending_page(self, limit: int = 100, audit_limit: int = 30, decided: str | None = None) -> PendingPage:
        pending = (await self.approvals.list_pending(limit)).pending
        async with self.deps.store.reading() as tx:
            sends = [(view, await tx.get_send(view.request_id)) for view in pending]
            audit = await tx.list_audit(newest=True, limit=audit_limit)
            approval = await tx.get_approval(decided) if decided else None
        return PendingPage(sends, audit, approval)

    async def send(self, send_id: str) -> SendRecord | None:
        async with self.deps.store.reading() as tx:
            return await tx.get_send(send_id)

    async def record_signin(self, key: ApiKeyRecord) -> None:
        async with self.deps.store.transaction() as tx:
            await self.deps.audit(tx, f"key:{key.id}", "admin_signin", key.id, self.deps.clock.now())

    # the audit log ---------------------------------------------------------------------
    async def audit_tail(self, n: int) -> list[AuditEntry]:
        async with self.deps.store.reading() as tx:
            return await tx.list_audit(newest=True, limit=n)

    async def verify_audit(self) -> ChainReport:
        entries: list[AuditEntry] = []
        after = 0
        while True:
            async with self.deps.store.reading() as tx:
                page = await tx.list_audit(after_seq=after, limit=AUDIT_PAGE)
            if not page:
                return verify_chain(entries)
            entries.extend(page)
            after = page[-1].seq

    # the outbox ------------------------------------------------------------------------
    async def outbox_counts(self) -> dict[str, int]:
        async with self.deps.store.reading() as tx:
            return await tx.outbox_counts()

    async def outbox_list(self, status: str | None, limit: int) -> list[OutboxRow]:
        async with self.deps.store.reading() as tx:
            return await tx.list_outbox(status, limit)

    async def outbox_row(self, row_id: str) -> OutboxRow:
        async with self.deps.store.reading() as tx:
            row = await tx.get_outbox(row_id)
        if row is None:
            raise NotFoundError(f"no outbox row {row_id!r}")
        return row

    async def outbox_retry(self, row_id: str) -> bool:
        """Re-queue a failed or pending row for delivery now; False for a row in another state."""
        async with self.deps.store.transaction() as tx:
            return await tx.requeue_outbox(row_id, self.deps.clock.now())

    async def gauges(self) -> tuple[dict[str, int], int]:
        """(outbox rows by status, pending approvals), for /metrics."""
        async with self.deps.store.reading() as tx:
            counts = await tx.outbox_counts()
            pending = await tx.list_approvals(ApprovalStatus.PENDING, PENDING_CAP)
        return counts, len(pending)
