"""Security alerts and the password-changed notice: emails the system sends on its own.

Both go through `gate()` like any other email. Alerts are deduplicated per account,
reason and window: the check and the write happen in one transaction under a lock on
the account, so a burst of attempts, even across instances, yields one alert.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from reset_mcp.deps import Deps, lock_account
from reset_mcp.emails.outgoing import context_payload
from reset_mcp.ids import new_id
from reset_mcp.policy.gate import Gated, gate
from reset_mcp.store import Tx
from reset_mcp.store.records import ContactEvent, SendRecord

ALERT_EVENT = "security_alert_queued"
AUTO_ALERT_REASON = "suspicious password reset activity"


async def queue_security_alert(
    deps: Deps,
    tx: Tx,
    *,
    email: str,
    user_id: str | None,
    reason: str,
    details: str | None,
    now: datetime,
    requested_by: str,
    window_minutes: int,
    locale: str | None = None,
    timezone: str | None = None,
) -> tuple[Gated | None, str | None]:
    """Queue an alert unless one for this account and reason went out in the window.

    Answers (gated, None) when queued, (None, request_id_of_earlier_alert) when deduplicated.
    """
    await lock_account(tx, email)
    since = now - timedelta(minutes=window_minutes)
    for event in await tx.list_events(email=email, since=since, event_types=(ALERT_EVENT,), limit=50):
        if event.metadata.get("reason") == reason:
            return None, str(event.metadata.get("request_id"))
    attempts = await tx.list_events(
        email=email, since=since, event_types=("reset_requested", "reset_rate_limited"), limit=10
    )
    payload: dict[str, Any] = {
        "reason": reason,
        "details": details,
        "attempts": [
            context_payload(
                e.created_at,
                e.ip or "unknown",
                e.metadata.get("device_label", "unknown device"),
                e.metadata.get("location", "unknown"),
            )
            for e in attempts
        ],
        "locale": locale,
        "timezone": timezone,
    }
    send = SendRecord(
        id=new_id("req"),
        kind="security_alert",
        recipient=email,
        user_id=user_id,
        status="queued",
        reason=None,
        requested_by=requested_by,
        decision="",
        created_at=now,
        updated_at=now,
        payload=payload,
    )
    gated = await gate(deps, tx, send, now)
    await tx.insert_event(
        ContactEvent(
            email=email,
            user_id=user_id,
            event_type=ALERT_EVENT,
            created_at=now,
            metadata={"reason": reason, "request_id": send.id, "status": gated.status},
        )
    )
    return gated, None


async def queue_password_changed(
    deps: Deps,
    tx: Tx,
    *,
    email: str,
    user_id: str,
    now: datetime,
    context: dict[str, Any] | None,
    locale: str | None,
    timezone: str | None,
) -> Gated:
    send = SendRecord(
        id=new_id("req"),
        kind="password_changed",
        recipient=email,
        user_id=user_id,
        status="queued",
        reason=None,
        requested_by="system",
        decision="",
        created_at=now,
        updated_at=now,
        payload={"changed_at": now.timestamp(), "context": context, "locale": locale, "timezone": timezone},
    )
    gated = await gate(deps, tx, send, now)
    await tx.insert_event(
        ContactEvent(
            email=email,
            user_id=user_id,
            event_type="password_changed_notice",
            created_at=now,
            metadata={"request_id": send.id, "status": gated.status},
        )
    )
    return gated
