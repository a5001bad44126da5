"""What the approvals page shows: held emails rendered with the link masked, times, audit rows.

The preview is rendered by the same composer (and `MessageFactory` for the kinds without a
token) from the send record's payload, exactly as it would go out, except that a reset
link's `{token}` is replaced by `MASK`: nothing is minted and no token record is written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from reset_mcp.app import App
from reset_mcp.compose.models import PasswordResetData, RenderedEmail, RequestContext
from reset_mcp.errors import ResetMCPError
from reset_mcp.models import ApprovalView
from reset_mcp.store.records import AuditEntry, OutboxRow, SendRecord

log = logging.getLogger("reset_mcp.server")
MASK = "•••MASKED•••"
KIND_LABELS = {
    "password_reset": "Password reset",
    "security_alert": "Security alert",
    "password_changed": "Password changed notice",
    "oversight_notice": "Oversight notice",
}


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


def _context(data: dict[str, Any] | None) -> RequestContext | None:
    if not data:
        return None
    at = datetime.fromtimestamp(float(data["at"]), UTC)
    return RequestContext(at=at, ip=str(data["ip"]), device=str(data["device"]), location=str(data["location"]))


def render_masked(app: App, send: SendRecord, now: datetime) -> RenderedEmail:
    """The email `send` would go out as if approved now, its token replaced by MASK."""
    p, settings = send.payload, app.settings
    if send.kind == "password_reset":
        ctx = _context(p.get("context"))
        if ctx is None:
            raise ValueError("the request has no context")
        ttl = settings.token_ttl_minutes
        data = PasswordResetData(
            reset_url=settings.reset_url.replace("{token}", MASK),
            report_url=settings.report_url.replace("{token}", MASK) if settings.report_url else None,
            expires_at=now + timedelta(minutes=ttl),
            ttl_minutes=ttl,
            context=ctx,
            to_name=p.get("to_name"),
        )
        return app.composer.password_reset(data, locale=p.get("locale"), timezone=p.get("timezone"))
    # The other kinds carry no token: render them exactly as the dispatcher will.
    row = OutboxRow(
        id="preview",
        send_id=send.id,
        kind=send.kind,
        recipient=send.recipient,
        message_id="",
        status="preview",
        created_at=now,
        next_attempt_at=now,
        payload=p,
    )
    return app.dispatcher.messages.render(row)


def try_render(app: App, send: SendRecord | None, now: datetime) -> RenderedEmail | None:
    if send is None:
        return None
    try:
        return render_masked(app, send, now)
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
        kind_label=KIND_LABELS.get(view.kind, view.kind),
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
