"""What the approvals page shows: held emails as they would go out (link masked), times, audit rows.

The preview is `MessageFactory.preview`: the same rendering as the dispatcher's, from the
send record's payload, except that a token is replaced by `MASK`: nothing is minted and
no token record is written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from reset_mcp.app import App
from reset_mcp.compose import RenderedEmail
from reset_mcp.errors import ResetMCPError
from reset_mcp.models import ApprovalView
from reset_mcp.store.records import AuditEntry, SendRecord

log = logging.getLogger(__name__)


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def until(expires_at: datetime, now: datetime) -> str:
    """'in 1 h 5 min', 'in 40 s', or 'expired'."""
    seconds = int((expires_at - now).total_seconds())
    if seconds <= 0:
        return "expired"
    if seconds < 60:
        return f"in {seconds} s"
    hours, minutes = divmod(seconds // 60, 60)
    return f"in {hours} h {minutes} min" if hours else f"in {minutes} min"


def kind_label(app: App, kind: str) -> str:
    found = app.kinds.get(kind)
    return found.label if found is not None else kind


def try_render(app: App, send: SendRecord | None, now: datetime) -> RenderedEmail | None:
    if send is None:
        return None
    try:
        return app.messages.preview(send, now)
    except (ResetMCPError, KeyError, TypeError, ValueError) as exc:
        log.warning("could not preview %s: %s", send.id, type(exc).__name__)
        return None


@dataclass(frozen=True, slots=True)
class PendingItem:
    id: str
    kind: str
    kind_label: str
    recipient: str
    requested_by: str
    reason: str
    summary: str
    created: str
    expires: str
    expires_in: str
    subject: str | None
    text: str | None


def pending_item(app: App, view: ApprovalView, send: SendRecord | None, now: datetime) -> PendingItem:
    rendered = try_render(app, send, now)
    return PendingItem(
        id=view.id,
        kind=view.kind,
        kind_label=kind_label(app, view.kind),
        recipient=view.recipient,
        requested_by=view.requested_by,
        reason=view.reason,
        summary=view.summary,
        created=when(view.created_at),
        expires=when(view.expires_at),
        expires_in=until(view.expires_at, now),
        subject=rendered.subject if rendered else None,
        text=rendered.text if rendered else None,
    )


def audit_rows(entries: list[AuditEntry]) -> list[dict[str, str]]:
    """Newest first, each detail as compact JSON (escaped by the template, capped)."""
    rows = []
    for e in sorted(entries, key=lambda entry: entry.seq, reverse=True):
        detail = json.dumps(e.detail, ensure_ascii=False, sort_keys=True, default=str)
        rows.append(
            {
                "seq": str(e.seq),
                "at": e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "detail": detail if len(detail) <= 300 else detail[:299] + "…",
            }
        )
    return rows
