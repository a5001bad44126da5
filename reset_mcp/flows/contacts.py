"""Contact history and abuse checks: what the agent can learn about an address."""

from __future__ import annotations

from datetime import timedelta

from reset_mcp.deps import STDIO_CALLER, Caller, Deps, lock_account
from reset_mcp.errors import InvalidInputError
from reset_mcp.flows.alerts import queue_security_alert
from reset_mcp.models import AbuseResult, AlertResult, ContactEventView, ContactSummary, EventRecorded
from reset_mcp.policy import abuse
from reset_mcp.store.records import ContactEvent
from reset_mcp.validation import flat_metadata, identifier, normalize_email, parse_ip, single_line
from reset_mcp.vocab import ATTEMPTS, Event, OutboxStatus, SendStatus

ALERTS_PER_HOUR = 3  # agent-requested alerts per account


class Contacts:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def record_event(
        self, email: str, event_type: str, metadata: dict[str, object] | None, caller: Caller = STDIO_CALLER
    ) -> EventRecorded:
        email = normalize_email(email)
        event_type = identifier(event_type, "event_type", 64)
        if event_type in set(Event):  # written by reset-mcp itself; an agent may not forge them
            raise InvalidInputError(f"event_type: {event_type!r} is recorded by reset-mcp itself")
        meta = flat_metadata(metadata)
        now = self.deps.clock.now()
        async with self.deps.store.transaction() as tx:
            await tx.insert_event(
                ContactEvent(
                    email=email,
                    event_type=event_type,
                    created_at=now,
                    metadata={**meta, "recorded_by": caller.id},
                    mailbox=self.deps.canon.mailbox(email),
                )
            )
        return EventRecorded(email=email, event_type=event_type, created_at=now)

    async def get_contact(self, email: str, limit: int = 50) -> ContactSummary:
        email = normalize_email(email)
        async with self.deps.store.transaction() as tx:
            events = await tx.list_events(mailbox=self.deps.canon.mailbox(email), email=email, limit=500)
        requests = [e for e in events if e.event_type in ATTEMPTS]
        last = requests[0] if requests else None
        return ContactSummary(
            email=email,
            user_ids=sorted({e.user_id for e in events if e.user_id}),
            last_reset_request=last.created_at if last else None,
            last_reset_ip=last.ip if last else None,
            known_ips=sorted({e.ip for e in events if e.ip}),
            devices=sorted({str(e.metadata.get("device_label", e.device)) for e in requests if e.device}),
            countries=sorted({e.country for e in events if e.country}),
            event_count=len(events),
            recent_events=[
                ContactEventView(
                    event_type=e.event_type,
                    created_at=e.created_at,
                    user_id=e.user_id,
                    ip=e.ip,
                    device=e.device,
                    country=e.country,
                    metadata=e.metadata,
                )
                for e in events[:limit]
            ],
        )

    async def check_abuse(
        self, *, email: str | None, user_id: str | None, ip: str | None, window_minutes: int = 60
    ) -> AbuseResult:
        email = normalize_email(email) if email else None
        user_id = identifier(user_id, "user_id") if user_id else None
        if email is None and user_id is None:
            raise InvalidInputError("give email or user_id")
        if not 1 <= window_minutes <= 7 * 24 * 60:
            raise InvalidInputError("window_minutes: between 1 and 10080")
        net = self.deps.canon.net(parse_ip(ip)) if ip else None
        async with self.deps.store.transaction() as tx:
            report = await abuse.account_report(
                tx,
                self.deps.rules,
                self.deps.clock.now(),
                mailbox=self.deps.canon.mailbox(email) if email else None,
                user_id=user_id,
                net=net,
                window_minutes=window_minutes,
            )
        return AbuseResult(
            attempts=report.attempts,
            distinct_ips=report.distinct_ips,
            distinct_devices=report.distinct_devices,
            countries=report.countries,
            first_attempt=report.first_attempt,
            last_attempt=report.last_attempt,
            risk=report.risk,
            reasons=report.reasons,
            recommended_action=report.recommended_action,  # type: ignore[arg-type]
            ip_attempts=report.ip_attempts,
            window_minutes=window_minutes,
        )

    async def send_security_alert(
        self,
        *,
        email: str,
        user_id: str | None,
        reason: str,
        details: str | None,
        caller: Caller = STDIO_CALLER,
        locale: str | None = None,
        timezone: str | None = None,
    ) -> AlertResult:
        d = self.deps
        email = normalize_email(email)
        user_id = identifier(user_id, "user_id") if user_id else None
        reason = identifier(reason, "reason", 200)
        details = single_line(details, "details", 1000)
        locale = single_line(locale, "locale", 35)
        timezone = single_line(timezone, "timezone", 64)
        now = d.clock.now()
        since = now - timedelta(hours=1)
        mailbox = d.canon.mailbox(email)
        async with d.store.transaction() as tx:
            await lock_account(tx, mailbox)
            if await tx.count_events(Event.ALERT_REQUESTED, since, mailbox=mailbox) >= ALERTS_PER_HOUR:
                oldest = await tx.oldest_event_since(Event.ALERT_REQUESTED, since, mailbox=mailbox) or now
                retry = abuse.seconds_until_an_hour_after(oldest, now)
                return AlertResult(
                    status=SendStatus.RATE_LIMITED,
                    retry_after=retry,
                    reason=f"at most {ALERTS_PER_HOUR} agent alerts per account per hour",
                )
            gated, earlier = await queue_security_alert(
                d,
                tx,
                email=email,
                user_id=user_id,
                reason=reason,
                details=details,
                now=now,
                requested_by=caller.id,
                window_minutes=d.rules.window_minutes,
                locale=locale,
                timezone=timezone,
            )
            if gated is None:
                return AlertResult(
                    request_id=earlier,
                    status="deduplicated",
                    deduplicated=True,
                    reason="an alert for this account and reason was already sent in this window",
                )
            await tx.insert_event(
                ContactEvent(
                    email=email,
                    event_type=Event.ALERT_REQUESTED,
                    created_at=now,
                    metadata={"requested_by": caller.id},
                    mailbox=mailbox,
                )
            )
        delivery = await d.deliver(gated.rows)
        status = gated.status
        if status == SendStatus.QUEUED and delivery is not None and delivery.status == OutboxStatus.SENT:
            status = SendStatus.SENT
        return AlertResult(request_id=gated.send_id, status=status, reason=gated.reason, delivery=delivery)
