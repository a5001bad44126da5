"""Contact history and abuse checks: what the agent can learn about an address.

Who sees what (docs/SECURITY.md): the security facts of any address (`contact_facts`)
and its full history need the `contacts:read` scope, or the local user (stdio); any
other caller sees only what it did itself: the events its own requests and records
made, and abuse verdicts without the addresses, devices and countries behind them.
Recording events is limited per caller and per contact, so an agent cannot bury an
address's history in noise (and the facts are kept apart from it anyway).

With an account directory, what reset-mcp itself recorded for an address came from the
directory: a caller that does not see everything sees only the events it recorded, and
checks abuse by the account as it named it (counted alike whether the account exists).
Outsiders' text comes back as data (`untrusted.as_data`, listed in the result's `_meta`).
The agent's own security alerts: `agent_alerts.py`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from reset_mcp import contact_facts
from reset_mcp.deps import STDIO_CALLER, Caller, Deps, lock_account
from reset_mcp.directory import check_account
from reset_mcp.errors import InvalidInputError, RateLimitedError
from reset_mcp.flows import idempotency
from reset_mcp.flows.agent_alerts import ALERTS_PER_HOUR, AlertRequests, reason_code
from reset_mcp.flows.views import ID_CAP, LABEL_CAP, TEXT_CAP, data, metadata_as_data
from reset_mcp.models import AbuseResult, ContactEventView, ContactSummary, EventRecorded
from reset_mcp.policy import abuse
from reset_mcp.policy.throttle import Quota
from reset_mcp.store.records import ContactEvent
from reset_mcp.untrusted import as_data
from reset_mcp.validation import flat_metadata, identifier, normalize_email, parse_ip
from reset_mcp.vocab import ACCOUNT_ATTEMPTS, ATTEMPTS, Event, Scope

__all__ = ["ALERTS_PER_HOUR", "Contacts", "reason_code", "sees_all"]
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


class Contacts(AlertRequests):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.recorded = Quota(RECORDED_PER_CALLER_HOUR, timedelta(hours=1))

    async def record_event(
        self,
        email: str,
        event_type: str,
        metadata: dict[str, object] | None,
        caller: Caller = STDIO_CALLER,
        *,
        idempotency_key: str | None = None,
    ) -> EventRecorded:
        email = normalize_email(email)
        event_type = identifier(event_type, "event_type", 64)
        if event_type in set(Event):  # written by reset-mcp itself; an agent may not forge them
            raise InvalidInputError(f"event_type: {event_type!r} is recorded by reset-mcp itself")
        if as_data(event_type, 64) != event_type:  # shown back as data: it must read the same
            raise InvalidInputError("event_type: letters, digits and punctuation only, nothing invisible")
        meta = flat_metadata(metadata)
        now = self.deps.clock.now()
        mailbox = self.deps.canon.mailbox(email)
        args = {"email": email, "event_type": event_type, "metadata": meta}
        idem = idempotency.idem_for(caller.id, idempotency_key, "record_contact_event", args)
        if (earlier := await idempotency.earlier(self.deps.store, idem, EventRecorded, now)) is not None:
            return earlier
        try:
            return await self._record(email, event_type, meta, mailbox, caller, now, idem)
        except idempotency.Replayed as exc:
            return idempotency.replayed(exc, idem, EventRecorded)

    async def _record(
        self,
        email: str,
        event_type: str,
        meta: dict[str, object],
        mailbox: str,
        caller: Caller,
        now: datetime,
        idem: idempotency.Idem | None,
    ) -> EventRecorded:
        answer = EventRecorded(email=email, event_type=event_type, created_at=now)
        async with self.deps.store.transaction() as tx:
            await idempotency.claim(tx, idem, now)
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
            await idempotency.remember(tx, idem, answer)
        return answer

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
                if self.deps.directory is not None:
                    # Its own reset requests were sent where the directory said: an event here
                    # would tell that this address is an account's. Only what it recorded.
                    events = folded = [e for e in events if e.event_type not in SYSTEM_EVENTS]
            elif kept is None:  # last seen before the facts were kept (schema 8): reset-mcp's own events
                folded = await tx.list_events(mailbox=mailbox, event_types=FACT_TYPES, limit=HISTORY_READ)
        facts = kept.facts if kept is not None else {}
        for event in reversed(folded):
            facts = contact_facts.note(facts, event)
        return ContactSummary(
            email=email,
            user_ids=sorted({as_data(u, ID_CAP) for u in facts.get("user_ids") or {}}),
            last_reset_request=contact_facts.when(facts, "last_request_at"),
            last_reset_ip=facts.get("last_request_ip"),
            known_ips=sorted(facts.get("known_ips") or {}),
            devices=sorted({as_data(v, LABEL_CAP) for v in facts.get("devices") or {}}),
            countries=sorted(facts.get("countries") or {}),
            last_reported_unrequested=contact_facts.when(facts, "last_report_at"),
            own_only=not full,
            event_count=len(events),
            recent_events=[
                ContactEventView(
                    event_type=as_data(e.event_type, 64),
                    created_at=e.created_at,
                    email=e.email,
                    user_id=data(e.user_id, ID_CAP),
                    ip=e.ip,
                    device=data(e.device, LABEL_CAP),
                    country=e.country,
                    metadata=metadata_as_data(e.metadata),
                )
                for e in events[:limit]
            ],
        )

    async def check_abuse(
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        ip: str | None = None,
        window_minutes: int = 60,
        caller: Caller = STDIO_CALLER,
        account: str | None = None,
    ) -> AbuseResult:
        """The verdict; without `contacts:read` only the counts, the risk and the action
        (not the addresses, devices and countries the history holds). With a directory, by
        the account as the caller names it: its requests, counted alike known or not."""
        d = self.deps
        attempts = ATTEMPTS
        if d.directory is not None:
            if account is None:
                raise InvalidInputError("an account directory is configured: give the account")
            mailbox, user_id, attempts = abuse.account_key(check_account(account)), None, ACCOUNT_ATTEMPTS
        else:
            email = normalize_email(email) if email else None
            user_id = identifier(user_id, "user_id") if user_id else None
            if email is None and user_id is None:
                raise InvalidInputError("give email or user_id")
            mailbox = d.canon.mailbox(email) if email else None
        if not 1 <= window_minutes <= 7 * 24 * 60:
            raise InvalidInputError("window_minutes: between 1 and 10080")
        net = d.canon.net(parse_ip(ip)) if ip else None
        async with d.store.reading() as tx:
            report = await abuse.account_report(
                tx, d.rules, d.clock.now(), mailbox=mailbox, user_id=user_id, net=net, window_minutes=window_minutes,
                attempts=attempts,
            )  # fmt: skip
        full = sees_all(caller)
        return AbuseResult(
            attempts=report.attempts,
            distinct_ips=report.distinct_ips if full else [],
            distinct_devices=[as_data(v, LABEL_CAP) for v in report.distinct_devices] if full else [],
            countries=report.countries if full else [],
            first_attempt=report.first_attempt,
            last_attempt=report.last_attempt,
            risk=report.risk,
            reasons=[as_data(r if full else abuse.without_values(r), TEXT_CAP) for r in report.reasons],
            recommended_action=report.recommended_action,  # type: ignore[arg-type]
            ip_attempts=report.ip_attempts,
            window_minutes=window_minutes,
        )
