"""Security alerts an agent asks for: in our words only (a reason code and typed facts).

Without a directory the agent names the address; with one it names the account and the
directory names the address (`account_reset.for_account`: the same answer and time for
an unknown account). Deduplicated per account, reason and window (`alerts.py`), limited
per account (3 an hour) and by the caller's hourly budget.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import timedelta

from reset_mcp.deps import STDIO_CALLER, Caller, Deps, lock_account
from reset_mcp.directory import Account, check_account
from reset_mcp.emails import security_alert
from reset_mcp.errors import InvalidInputError
from reset_mcp.flows import idempotency
from reset_mcp.flows.account_reset import AccountLimits, AccountOutcome, Done, for_account
from reset_mcp.flows.alerts import queue_security_alert
from reset_mcp.flows.request import FactsInput, alert_facts
from reset_mcp.ids import new_id
from reset_mcp.models import AlertResult
from reset_mcp.policy import abuse
from reset_mcp.store import Tx
from reset_mcp.store.records import ContactEvent
from reset_mcp.validation import identifier, normalize_email, single_line
from reset_mcp.vocab import AlertReason, Event, OutboxStatus, SendStatus

ALERTS_PER_HOUR = 3  # agent-requested alerts per account


def reason_code(value: str) -> AlertReason:
    if value not in set(AlertReason):
        raise InvalidInputError(f"reason: one of {', '.join(AlertReason)} (the email words it in the owner's language)")
    return AlertReason(value)


class AlertRequests:
    """The agent's alerts; `Contacts` holds them (`service.contacts.send_security_alert`)."""

    deps: Deps

    async def send_security_alert(
        self,
        *,
        email: str,
        user_id: str | None,
        reason: str,
        facts: FactsInput | None = None,
        caller: Caller = STDIO_CALLER,
        locale: str | None = None,
        timezone: str | None = None,
        idempotency_key: str | None = None,
    ) -> AlertResult:
        """Without a directory: an alert to the address the caller names, in our words only."""
        d = self.deps
        if d.directory is not None:
            raise InvalidInputError("an account directory is configured: give the account, not email and user_id")
        email = normalize_email(email)
        user_id = identifier(user_id, "user_id") if user_id else None
        code = reason_code(reason)
        shown = alert_facts(d, facts)
        locale = single_line(locale, "locale", 35)
        timezone = single_line(timezone, "timezone", 64)
        now = d.clock.now()
        args = {
            "email": email, "user_id": user_id, "reason": code, "facts": asdict(facts) if facts else None,
            "locale": locale, "timezone": timezone,
        }  # fmt: skip
        idem = idempotency.idem_for(caller.id, idempotency_key, "send_security_alert", args)
        if (earlier := await idempotency.earlier(d.store, idem, AlertResult, now)) is not None:
            return earlier
        since = now - timedelta(hours=1)
        mailbox = d.canon.mailbox(email)
        try:
            async with d.store.transaction() as tx:
                await idempotency.claim(tx, idem, now)
                await lock_account(tx, mailbox)
                limit = await abuse.caller_budget(tx, caller.id, d.caller_sends_per_hour, now)
                if (
                    not limit.limited
                    and await tx.count_events(Event.ALERT_REQUESTED, since, mailbox=mailbox) >= ALERTS_PER_HOUR
                ):
                    oldest = await tx.oldest_event_since(Event.ALERT_REQUESTED, since, mailbox=mailbox) or now
                    limit = abuse.RateVerdict(
                        True,
                        abuse.seconds_until_an_hour_after(oldest, now),
                        f"at most {ALERTS_PER_HOUR} agent alerts per account per hour",
                    )
                if limit.limited:
                    await idempotency.forget(tx, idem)
                    return AlertResult(
                        status=SendStatus.RATE_LIMITED, retry_after=limit.retry_after, reason=limit.reason
                    )
                gated, earlier_id = await queue_security_alert(
                    d,
                    tx,
                    email=email,
                    user_id=user_id,
                    reason=code,
                    facts=shown,
                    now=now,
                    requested_by=caller.id,
                    window_minutes=d.rules.window_minutes,
                    locale=locale,
                    timezone=timezone,
                )
                if gated is None:
                    first = AlertResult(
                        request_id=earlier_id,
                        status="deduplicated",
                        deduplicated=True,
                        reason="an alert for this account and reason was already sent in this window",
                    )
                    await idempotency.remember(tx, idem, first)
                    return first
                await tx.insert_event(
                    ContactEvent(
                        email=email,
                        event_type=Event.ALERT_REQUESTED,
                        created_at=now,
                        metadata={"requested_by": caller.id},
                        mailbox=mailbox,
                    )
                )
                await tx.insert_event(abuse.caller_send(caller.id, now, security_alert.KIND.name))
                first = AlertResult(request_id=gated.send_id, status=gated.status, reason=gated.reason)
                await idempotency.remember(tx, idem, first)
        except idempotency.Replayed as exc:
            return idempotency.replayed(exc, idem, AlertResult)
        delivery = await d.deliver(gated.rows)
        status = gated.status
        if status == SendStatus.QUEUED and delivery is not None and delivery.status == OutboxStatus.SENT:
            status = SendStatus.SENT
        answer = AlertResult(request_id=gated.send_id, status=status, reason=gated.reason, delivery=delivery)
        await idempotency.update(d.store, idem, answer)
        return answer

    async def alert_account(
        self,
        *,
        account: str,
        reason: str,
        facts: FactsInput | None = None,
        caller: Caller = STDIO_CALLER,
        idempotency_key: str | None = None,
    ) -> AccountOutcome:
        """With a directory: an alert to the address the directory has for the account."""
        d = self.deps
        if d.directory is None:
            raise InvalidInputError("no account directory is configured: give email (and user_id)")
        started = time.monotonic()  # answer_in_step's clock
        account = check_account(account)
        code = reason_code(reason)
        shown = alert_facts(d, facts)
        now = d.clock.now()
        key = abuse.account_key(account)
        event = ContactEvent(
            email=key,
            event_type=Event.ACCOUNT_ALERT_REQUESTED,
            created_at=now,
            metadata={"requested_by": caller.id},
            mailbox=key,
        )

        async def alert(tx: Tx, found: Account) -> Done:
            gated, earlier_id = await queue_security_alert(
                d,
                tx,
                email=found.email,
                user_id=found.user_id,
                reason=code,
                facts=shown,
                now=now,
                requested_by=caller.id,
                window_minutes=d.rules.window_minutes,
                locale=found.locale,
                timezone=found.timezone,
                to_name=found.name,
            )
            if gated is None:  # one alert per account, reason and window: this one is that one
                return Done(earlier_id or new_id("req"))
            return Done(gated.send_id, gated.rows, gated.approval_id)

        args = {"account": account, "reason": code, "facts": asdict(facts) if facts else None}
        idem = idempotency.idem_for(caller.id, idempotency_key, "send_security_alert", args)
        limits = AccountLimits(key, ALERTS_PER_HOUR, event)
        return await for_account(
            d, caller, account, limits, alert, kind=security_alert.KIND.name, idem=idem, started=started
        )
