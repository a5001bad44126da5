"""Security alerts and the password-changed notice: emails the system sends on its own.

Both go through `gate()` like any other email. Alerts are deduplicated per account,
reason and window: the check and the write happen in one transaction under a lock on
the account, so a burst of attempts, even across instances, yields one alert.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from reset_mcp.compose import RequestContext
from reset_mcp.deps import Deps, lock_account
from reset_mcp.emails import password_changed, security_alert
from reset_mcp.emails.security_alert import AlertFacts
from reset_mcp.policy.gate import Gated, gate
from reset_mcp.store import Tx
from reset_mcp.store.records import ContactEvent, SendRecord
from reset_mcp.vocab import ATTEMPTS, AlertReason, Event


def _attempt(e: ContactEvent) -> RequestContext:
    return RequestContext(
        at=e.created_at,
        ip=e.ip or "unknown",
        device=e.metadata.get("device_label", "unknown device"),
        location=e.metadata.get("location", "unknown"),
    )


async def queue_security_alert(
    deps: Deps,
    tx: Tx,
    *,
    email: str,
    user_id: str | None,
    reason: AlertReason,
    facts: AlertFacts | None,
    now: datetime,
    requested_by: str,
    window_minutes: int,
    locale: str | None = None,
    timezone: str | None = None,
    to_name: str | None = None,
) -> tuple[Gated | None, str | None]:
    """Queue an alert unless one for this account and reason went out in the window.

    Answers (gated, None) when queued, (None, request_id_of_earlier_alert) when deduplicated.
    """
    mailbox = deps.canon.mailbox(email)  # one alert per inbox, however it was spelled
    await lock_account(tx, mailbox)
    since = now - timedelta(minutes=window_minutes)
    for event in await tx.list_events(mailbox=mailbox, since=since, event_types=(Event.ALERT_QUEUED,), limit=50):
        if event.metadata.get("reason") == reason:
            return None, str(event.metadata.get("request_id"))
    attempts = await tx.list_events(mailbox=mailbox, since=since, event_types=ATTEMPTS, limit=10)
    payload = security_alert.Payload(
        reason=reason,
        facts=facts,
        attempts=tuple(_attempt(e) for e in attempts),
        locale=locale,
        timezone=timezone,
        to_name=to_name,
    )
    send = SendRecord.new(security_alert.KIND.name, email, user_id, requested_by, payload.dump(), now)
    gated = await gate(deps, tx, send, now)
    await tx.insert_event(
        ContactEvent(
            email=email,
            user_id=user_id,
            event_type=Event.ALERT_QUEUED,
            created_at=now,
            metadata={"reason": str(reason), "request_id": send.id, "status": gated.status},
            mailbox=mailbox,
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
    context: RequestContext | None,
    locale: str | None,
    timezone: str | None,
    to_name: str | None = None,
) -> Gated:
    payload = password_changed.Payload(
        changed_at=now, context=context, locale=locale, timezone=timezone, to_name=to_name
    )
    send = SendRecord.new(password_changed.KIND.name, email, user_id, "system", payload.dump(), now)
    gated = await gate(deps, tx, send, now)
    await tx.insert_event(
        ContactEvent(
            email=email,
            user_id=user_id,
            event_type=Event.PASSWORD_CHANGED_NOTICE,
            created_at=now,
            metadata={"request_id": send.id, "status": gated.status},
            mailbox=deps.canon.mailbox(email),
        )
    )
    return gated
