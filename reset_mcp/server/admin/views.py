"""What the approvals page shows: held emails as they would go out (link masked), the
account's risk and recent attempts beside each, times, people by name.

The preview is `MessageFactory.preview`: the same rendering as the dispatcher's, from the
send record's payload, except that a token is replaced by `MASK`: nothing is minted and
no token record is written. The audit list is `audit_lines`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from reset_mcp.app import App
from reset_mcp.compose import RenderedEmail
from reset_mcp.errors import ResetMCPError
from reset_mcp.flows.admin import AccountActivity
from reset_mcp.models import ApprovalView
from reset_mcp.server.admin.audit_lines import Names
from reset_mcp.store.records import ContactEvent, SendRecord
from reset_mcp.vocab import Event

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
class Attempt:
    """One reset attempt on the account, as the card lists it."""

    at: str
    ip: str
    device: str
    location: str
    by: str  # who asked, by name
    refused: bool  # answered rate_limited


@dataclass(frozen=True, slots=True)
class Activity:
    risk: str  # low | elevated | high
    reasons: tuple[str, ...]
    attempts: int
    window_minutes: int
    recent: tuple[Attempt, ...]


def attempt(e: ContactEvent, names: Names) -> Attempt:
    meta = e.metadata
    return Attempt(
        at=e.created_at.astimezone(UTC).strftime("%H:%M:%S UTC"),  # within the abuse window: today's clock
        ip=e.ip or "-",
        device=str(meta.get("device_label") or e.device or "unknown device"),
        location=str(meta.get("location") or e.country or "unknown"),
        by=names(str(meta["requested_by"])) if meta.get("requested_by") else "-",
        refused=e.event_type == Event.RESET_RATE_LIMITED,
    )


def activity_view(found: AccountActivity | None, names: Names) -> Activity | None:
    if found is None:
        return None
    recent = tuple(attempt(e, names) for e in found.recent)
    return Activity(str(found.risk), found.reasons, found.attempts, found.window_minutes, recent)


@dataclass(frozen=True, slots=True)
class PendingItem:
    id: str
    kind: str
    kind_label: str
    recipient: str
    requested_by: str  # by name
    reason: str
    summary: str
    created: str
    expires: str
    expires_in: str
    subject: str | None
    text: str | None
    requested_by_id: str = ""  # the principal itself
    activity: Activity | None = None
    given: tuple[tuple[str, str], ...] = ()  # what the requester gave: data, shown quoted and apart


GIVEN_LABELS = (
    ("user_id", "User ID"), ("name", "Name"), ("ip", "IP address"), ("device", "Device"), ("location", "Location"),
)  # fmt: skip


def given_rows(view: ApprovalView) -> tuple[tuple[str, str], ...]:
    if view.given is None:
        return ()
    values = view.given.model_dump()
    return tuple((label, values[key]) for key, label in GIVEN_LABELS if values.get(key))


def pending_item(
    app: App,
    view: ApprovalView,
    send: SendRecord | None,
    now: datetime,
    activity: AccountActivity | None = None,
    names: Names | None = None,
) -> PendingItem:
    rendered = try_render(app, send, now)
    names = names or Names({})
    return PendingItem(
        id=view.id,
        kind=view.kind,
        kind_label=kind_label(app, view.kind),
        recipient=view.recipient,
        requested_by=names(view.requested_by),
        requested_by_id=view.requested_by,
        reason=view.reason,
        summary=names.replace_in(view.summary),
        created=when(view.created_at),
        expires=when(view.expires_at),
        expires_in=until(view.expires_at, now),
        subject=rendered.subject if rendered else None,
        text=rendered.text if rendered else None,
        activity=activity_view(activity, names),
        given=given_rows(view),
    )
