"""Contact history and abuse checks: what the agent can learn about an address.

Who sees what (docs/SECURITY.md): the security facts of any address (`contact_facts`)
and its full history need the `contacts:read` scope, or the local user (stdio); any
other caller sees only what it did itself: the events its own requests and records
made, and abuse verdicts without the addresses, devices and countries behind them.
Recording events is limited per caller and per contact, so an agent cannot bury an
address's history in noise (and the facts are kept apart from it anyway).
"""

from __future__ import annotations

from datetime import timedelta

from reset_mcp import contact_facts
from reset_mcp.deps import STDIO_CALLER, Caller, Deps, lock_account
from reset_mcp.errors import InvalidInputError, RateLimitedError
from reset_mcp.flows.alerts import queue_security_alert
from reset_mcp.models import AbuseResult, AlertResult, ContactEventView, ContactSummary, EventRecorded
from reset_mcp.policy import abuse
from reset_mcp.policy.throttle import Quota
from reset_mcp.store.records import ContactEvent
from reset_mcp.validation import flat_metadata, identifier, normalize_email, parse_ip, single_line
from reset_mcp.vocab import Event, OutboxStatus, Scope, SendStatus

ALERTS_PER_HOUR = 3  # agent-requested alerts per account
RECORDED_PER_CONTACT_HOUR = 60  # events agents record for one mailbox (shared by every instance)
RECORDED_PER_CALLER_HOUR = 1000  # events one caller records, any address (per process)
HISTORY_READ = 500  # newest events a contact read looks at (the facts are kept apart)
SYSTEM_EVENTS = tuple(Event)
FACT_TYPES = tuple(sorted(contact_facts.FACT_EVENTS))


def sees_all(caller: Caller) -> bool:
    """May read any address's facts and history (not only what it did itself)."""
    return caller.local or Scope.CONTACTS_READ in caller.scopes


def _own(event: ContactEvent, caller: Caller) -> bool:
    meta = event.metadata
    return caller.id in (meta.get("requested_by"), meta.get("recorded_by"))


class Contacts:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.recorded = Quota(RECORDED_PER_CALLER_HOUR, timedelta(hours=1))

    async def record_event(
        self, email: str, event_type: str, metadata: dict[str, object] | None, caller: Caller = STDIO_CALLER
    ) -> EventRecorded:
        email = normalize_email(email)
        event_type = identifier(event_type, "event_type", 64)
        if event_type in set(Event):  # written by reset-mcp itself; an agent may not forge them
            raise InvalidInputError(f"event_type: {event_type!r} is recorded by reset-mcp itself")
        meta = flat_metadata(metadata)
        now = self.deps.clock.now()
        mailbox = self.deps.canon.mailbox(email)
        async with self.deps.store.transaction() as tx:
            await lock_account(tx, mailbox)  # count-then-insert, as for resets
            count, oldest = await tx.recorded_events_since(mailbox, now - timedelta(hours=1), excluding=SYSTEM_EVENTS)
            if count >= RECORDED_PER_CONTACT_HOUR:
                wait = abuse.seconds_until_an_hour_after(oldest or now, now)
                raise RateLimitedError(f"at most {RECORDED_PER_CONTACT_HOUR} recorded events a contact an hour", wait)
            if (wait := self.recorded.take(caller.id, now)) is not None:
                raise RateLimitedError(f"at most {RECORDED_PER_CALLER_HOUR} recorded events a caller an hour", wait)
            await tx.insert_event(
                ContactEvent(
                    email=email,
                    event_type=event_type,
                    created_at=now,
                    metadata={**meta, "recorded_by": caller.id},
                    mailbox=mailbox,
                )
            )
        return EventRecorded(email=email, event_type=event_type, created_at=now)

    async def get_contact(self, email: str, caller: Caller = STDIO_CALLER, limit: int = 50) -> ContactSummary:
        """Every spelling of the address's inbox: its security facts and newest events;
        only the caller's own part of them without `contacts:read`."""
        email = normalize_email(email)
        mailbox = self.deps.canon.mailbox(email)
        full = sees_all(caller)
        async with self.deps.store.reading() as tx:
            events = await tx.list_events(mailbox=mailbox, limit=HISTORY_READ)
            kept = await tx.get_contact_facts(mailbox) if full else None
            folded: list[ContactEvent] = []
            if not full:  # what its own requests and records showed it, nothing anyone else's did
                events = folded = [e for e in events if _own(e, caller)]
            elif kept is None:  # last seen before the facts were kept (schema 8): reset-mcp's own events
                folded = await tx.list_events(mailbox=mailbox, event_types=FACT_TYPES, limit=HISTORY_READ)
        facts = kept.facts if kept is not None else {}
        for event in reversed(folded):
            facts = contact_facts.note(facts, event)
        return ContactSummary(
            email=email,
            user_ids=sorted(facts.get("user_ids") or {}),
            last_reset_request=contact_facts.when(facts, "last_request_at"),
            last_reset_ip=facts.get("last_request_ip"),
            known_ips=sorted(facts.get("known_ips") or {}),
            devices=sorted(facts.get("devices") or {}),
            countries=sorted(facts.get("countries") or {}),
            last_reported_unrequested=contact_facts.when(facts, "last_report_at"),
            own_only=not full,
            event_count=len(events),
            recent_events=[
                ContactEventView(
                    event_type=e.event_type,
                    created_at=e.created_at,
                    email=e.email,
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
        self,
        *,
        email: str | None,
        user_id: str | None,
        ip: str | None,
        window_minutes: int = 60,
        caller: Caller = STDIO_CALLER,
    ) -> AbuseResult:
        """The verdict; without `contacts:read` only the counts, the risk and the action
        (not the addresses, devices and countries the history holds)."""
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
        full = sees_all(caller)
        return AbuseResult(
            attempts=report.attempts,
            distinct_ips=report.distinct_ips if full else [],
            distinct_devices=report.distinct_devices if full else [],
            countries=report.countries if full else [],
            first_attempt=report.first_attempt,
            last_attempt=report.last_attempt,
            risk=report.risk,
            reasons=report.reasons if full else [abuse.without_values(r) for r in report.reasons],
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
