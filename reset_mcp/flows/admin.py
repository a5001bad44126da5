"""The overseer's reads and the outbox's administration: the approvals page, the audit
log, `/metrics` gauges and `reset-mcp outbox`.

Deciding an approval is `flows/approvals.py`; this module reads, keeps the approvals
page's sessions (held in the store, so signing out ends a session on every instance and
worker process), and re-queues a failed row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from reset_mcp import audit_anchor
from reset_mcp.audit import ChainReport, hash_kid, verify_chain
from reset_mcp.audit_head import chain_head
from reset_mcp.deps import Deps
from reset_mcp.errors import NotFoundError
from reset_mcp.flows.approvals import ApprovalDesk
from reset_mcp.models import ApprovalView
from reset_mcp.policy import abuse
from reset_mcp.store import Tx
from reset_mcp.store.records import (
    AdminSessionRecord,
    ApiKeyRecord,
    ApprovalRecord,
    AuditEntry,
    ContactEvent,
    OutboxRow,
    SendRecord,
)
from reset_mcp.vocab import ATTEMPTS, ApprovalStatus, Risk

AUDIT_PAGE = 5000  # entries a query while verifying: a long log never sits in one query
PENDING_CAP = 100_000  # pending approvals counted for /metrics
EXPIRED_SESSIONS_BATCH = 1000  # ended sessions cleared at each sign-in (sign-ins are rare)
RECENT_ATTEMPTS = 5  # an account's attempts listed beside a held email


@dataclass(frozen=True, slots=True)
class AccountActivity:
    """An account's reset attempts in the abuse window, and the abuse verdict on them now."""

    risk: Risk
    reasons: tuple[str, ...]
    attempts: int  # in the window
    window_minutes: int
    recent: tuple[ContactEvent, ...]  # the newest RECENT_ATTEMPTS of them, newest first


@dataclass(frozen=True, slots=True)
class PendingPage:
    """What the approvals page shows: held emails with their requests, recent audit entries."""

    pending: list[tuple[ApprovalView, SendRecord | None]]
    audit: list[AuditEntry]
    decided: ApprovalRecord | None  # the approval just decided, when the page names one
    activity: dict[str, AccountActivity] = field(default_factory=dict)  # by held email's recipient
    names: dict[str, str] = field(default_factory=dict)  # principal ("key:<id>") -> the key's name
    subjects: dict[str, SendRecord] = field(default_factory=dict)  # the sends audit entries are about


class AdminDesk:
    def __init__(self, deps: Deps, approvals: ApprovalDesk) -> None:
        self.deps = deps
        self.approvals = approvals

    # the approvals page ----------------------------------------------------------------
    async def pending_page(self, limit: int = 100, audit_limit: int = 30, decided: str | None = None) -> PendingPage:
        pending = (await self.approvals.list_pending(limit)).pending
        now = self.deps.clock.now()
        async with self.deps.store.reading() as tx:
            sends = [(view, await tx.get_send(view.request_id)) for view in pending]
            audit = await tx.list_audit(newest=True, limit=audit_limit)
            approval = await tx.get_approval(decided) if decided else None
            activity: dict[str, AccountActivity] = {}
            for view, _ in sends:
                if view.recipient not in activity:
                    activity[view.recipient] = await self._activity(tx, view.recipient, now)
            # Every key, revoked ones too: older entries name them.
            names = {f"key:{key.id}": key.name for key in await tx.list_api_keys()}
            subjects = {send.id: send for _, send in sends if send is not None}
            for entry in audit:
                if entry.subject not in subjects and (send := await tx.get_send(entry.subject)) is not None:
                    subjects[send.id] = send
        return PendingPage(sends, audit, approval, activity, names, subjects)

    async def _activity(self, tx: Tx, email: str, now: datetime) -> AccountActivity:
        rules = self.deps.rules
        mailbox = self.deps.canon.mailbox(email)  # the inbox, however its requests spelled it
        report = await abuse.account_report(tx, rules, now, mailbox=mailbox, user_id=None)
        since = now - timedelta(minutes=rules.window_minutes)
        recent = await tx.list_events(mailbox=mailbox, since=since, event_types=ATTEMPTS, limit=RECENT_ATTEMPTS)
        return AccountActivity(report.risk, tuple(report.reasons), report.attempts, rules.window_minutes, tuple(recent))

    async def send(self, send_id: str) -> SendRecord | None:
        async with self.deps.store.reading() as tx:
            return await tx.get_send(send_id)

    async def sign_in(self, key: ApiKeyRecord, session_id: str, expires_at: datetime) -> None:
        """Start a session (`session_id`: a hash of its cookie) and audit the sign-in."""
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            await tx.delete_expired_admin_sessions(now, EXPIRED_SESSIONS_BATCH)
            await tx.insert_admin_session(AdminSessionRecord(session_id, key.id, now, expires_at))
            await self.deps.audit(tx, f"key:{key.id}", "admin_signin", key.id, now)

    async def session_key(self, session_id: str) -> ApiKeyRecord | None:
        """The key a live session was started with; None once it ended or expired."""
        async with self.deps.store.reading() as tx:
            session = await tx.get_admin_session(session_id)
            if session is None or session.expires_at <= self.deps.clock.now():
                return None
            return await tx.get_api_key(session.key_id)

    async def sign_out(self, session_id: str, key: ApiKeyRecord) -> None:
        """End the session server-side: its cookie opens nothing afterwards, anywhere."""
        async with self.deps.store.transaction() as tx:
            if await tx.delete_admin_session(session_id):
                await self.deps.audit(tx, f"key:{key.id}", "admin_signout", key.id, self.deps.clock.now())

    # the audit log ---------------------------------------------------------------------
    async def audit_tail(self, n: int) -> list[AuditEntry]:
        async with self.deps.store.reading() as tx:
            return await tx.list_audit(newest=True, limit=n)

    async def verify_audit(self, anchor_file: Path | None = None) -> ChainReport:
        """The whole chain checked: keyed entries with the key ring (whenever the store keys
        its entries or the chain holds a keyed one), and against the heads `anchor_file`
        recorded. The file is read before the chain: a head anchored after a commit is then
        always in what is read (the other order would race a running server's commits)."""
        anchors = audit_anchor.read(anchor_file) if anchor_file is not None else None
        if anchors is not None and anchors.problem is not None:
            return ChainReport(False, 0, anchors.problem)
        entries: list[AuditEntry] = []
        after = 0
        while True:
            async with self.deps.store.reading() as tx:
                page = await tx.list_audit(after_seq=after, limit=AUDIT_PAGE)
            if not page:
                break
            entries.extend(page)
            after = page[-1].seq
        keyed = self.deps.store.audit_key is not None or any(hash_kid(e.hash) for e in entries)
        ring = self.deps.signer.audit_ring if keyed else None
        return verify_chain(entries, ring, anchors=anchors.heads if anchors is not None else None)

    async def audit_head(self) -> tuple[int, str]:
        """The chain's newest (seq, hash), for /metrics."""
        async with self.deps.store.reading() as tx:
            return await chain_head(tx)

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
