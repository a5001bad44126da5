"""One reset request, from a decided recipient to its outbox rows: the part both ways share.

Without a directory the agent names the recipient (`request_caller_named`); with one,
`account_reset` asks the directory first. Either way `queue_reset` runs inside the
caller's transaction: limits under the account's and the IP's locks, the event, the
policy gate (token and outbox row), the abuse verdict and perhaps an alert to the owner.

No word the agent wrote reaches the email: a name is kept only if `untrusted.person_name`
accepts it, a location only as "City, Country" of letters (`context.resolve_location`),
the device label comes from our User-Agent parser; the tool says what it dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from reset_mcp import contact_facts, untrusted
from reset_mcp.compose import RequestContext
from reset_mcp.context import Device, IPAddress, Location, parse_user_agent, resolve_location
from reset_mcp.deps import Caller, Deps, lock_account
from reset_mcp.emails import password_reset
from reset_mcp.emails.security_alert import AlertFacts
from reset_mcp.flows import idempotency
from reset_mcp.flows.alerts import queue_security_alert
from reset_mcp.models import ResetRequestResult
from reset_mcp.policy import abuse
from reset_mcp.policy.gate import gate
from reset_mcp.store import Tx
from reset_mcp.store.records import ContactEvent, OutboxRow, SendRecord
from reset_mcp.validation import identifier, normalize_email, parse_ip, single_line
from reset_mcp.vocab import AlertReason, Event, OutboxStatus, Risk, SendStatus

# What the fast path's delivery outcome makes of a queued request's answer.
_ANSWERED = {OutboxStatus.SENT: SendStatus.SENT, OutboxStatus.FAILED: SendStatus.FAILED}


@dataclass(frozen=True, slots=True)
class ResetInput:
    email: str
    user_id: str
    ip: str
    user_agent: str
    name: str | None = None
    location: str | None = None
    locale: str | None = None
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who the email goes to, already decided (by the directory, or the trusted caller)."""

    email: str
    user_id: str
    name: str | None = None
    locale: str | None = None
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked, as the email will show it."""

    ip: IPAddress
    device: Device
    location: Location


def origin_of(deps: Deps, ip: str, user_agent: str, location: str | None = None) -> Origin:
    parsed = parse_ip(ip)
    return Origin(parsed, parse_user_agent(user_agent or ""), resolve_location(parsed, location, deps.geo))


@dataclass(slots=True)
class Queued:
    """What one request became: more than an agent is shown when a directory is configured."""

    send_id: str
    status: SendStatus
    reason: str | None = None
    retry_after: int | None = None
    approval_id: str | None = None
    expires_at: datetime | None = None
    risk: Risk = Risk.LOW
    alert_queued: bool = False
    rows: list[OutboxRow] = field(default_factory=list)
    alert_rows: list[OutboxRow] = field(default_factory=list)


async def queue_reset(
    d: Deps,
    tx: Tx,
    to: Recipient,
    origin: Origin,
    caller: Caller,
    now: datetime,
    *,
    confirmed: bool | None = None,
    ip_limit: bool = True,
    budget: bool = True,
) -> Queued:
    """Inside the caller's transaction: limits, event, gate, verdict, alert.

    `ip_limit=False` and `budget=False` when the caller already applied those limits
    (a directory reset applies them before the lookup, to known and unknown alike)."""
    ip = str(origin.ip)
    # Limits, locks and risk count on these keys; the email still goes to `to.email`.
    mailbox, net = d.canon.mailbox(to.email), d.canon.net(origin.ip)
    ctx = RequestContext(at=now, ip=ip, device=origin.device.label(), location=origin.location.label)
    event = ContactEvent(
        email=to.email,
        user_id=to.user_id,
        event_type=Event.RESET_REQUESTED,
        created_at=now,
        ip=ip,
        device=origin.device.family_key(),
        country=origin.location.country_code,
        metadata={"device_label": ctx.device, "location": ctx.location, "requested_by": caller.id},
        mailbox=mailbox,
        net=net,
    )
    payload = password_reset.Payload(context=ctx, to_name=to.name, locale=to.locale, timezone=to.timezone)
    send = SendRecord.new(password_reset.KIND.name, to.email, to.user_id, caller.id, payload.dump(), now)
    # Count-then-insert under the account's and the network's locks: concurrent requests
    # on several instances cannot all slip under the limit.
    await lock_account(tx, mailbox)
    await tx.lock(f"ip:{net}")
    limit = abuse.RateVerdict(False)
    if budget:
        limit = await abuse.caller_budget(tx, caller.id, d.caller_sends_per_hour, now)
    if not limit.limited:
        limit = await abuse.check_rate_limits(tx, d.rules, now, mailbox=mailbox, net=net if ip_limit else None)
    if limit.limited:
        event.event_type = Event.RESET_RATE_LIMITED
        await tx.insert_event(event)
        await contact_facts.remember(tx, mailbox, event)
        send.status, send.reason, send.decision = SendStatus.RATE_LIMITED, limit.reason, SendStatus.RATE_LIMITED
        await tx.insert_send(send)
        await d.audit(tx, caller.id, "rate_limited", send.id, now, reason=limit.reason, ip=ip)
        out = Queued(send.id, SendStatus.RATE_LIMITED, limit.reason, limit.retry_after)
    else:
        await tx.insert_event(event)
        await contact_facts.remember(tx, mailbox, event)
        if budget:
            await tx.insert_event(abuse.caller_send(caller.id, now, send.kind))
        gated = await gate(d, tx, send, now, confirmed=confirmed)
        out = Queued(send.id, gated.status, gated.reason, None, gated.approval_id, gated.expires_at, rows=gated.rows)
    report = await abuse.account_report(tx, d.rules, now, mailbox=mailbox, user_id=None)
    out.risk = report.risk
    if report.risk == Risk.HIGH:
        alerted, _ = await queue_security_alert(
            d,
            tx,
            email=to.email,
            user_id=to.user_id,
            reason=AlertReason.SUSPICIOUS_RESET_ACTIVITY,
            facts=None,
            now=now,
            requested_by="abuse-detector",
            window_minutes=d.rules.window_minutes,
            locale=to.locale,
            timezone=to.timezone,
            to_name=to.name,
        )
        if alerted is not None:
            out.alert_queued, out.alert_rows = True, alerted.rows
    return out


async def request_caller_named(
    d: Deps,
    inp: ResetInput,
    caller: Caller,
    *,
    confirmed: bool | None = None,
    idempotency_key: str | None = None,
) -> ResetRequestResult:
    """Without a directory: the agent names the recipient and the user id."""
    email = normalize_email(inp.email)
    user_id = identifier(inp.user_id, "user_id")
    name_given = single_line(inp.name, "name", 200)
    place_given = single_line(inp.location, "location", 200)
    to = Recipient(
        email,
        user_id,
        untrusted.person_name(name_given),
        single_line(inp.locale, "locale", 35),
        single_line(inp.timezone, "timezone", 64),
    )
    origin = origin_of(d, inp.ip, inp.user_agent, place_given)
    dropped = {
        "name_dropped": name_given is not None and to.name is None,
        "location_dropped": place_given is not None and untrusted.caller_location(place_given) is None,
    }
    now = d.clock.now()
    # asdict only with a key: without one the arguments are not hashed, and copying costs.
    args = asdict(inp) if idempotency_key is not None else {}
    idem = idempotency.idem_for(caller.id, idempotency_key, "request_password_reset", args)
    if (earlier := await idempotency.earlier(d.store, idem, ResetRequestResult, now)) is not None:
        return earlier
    try:
        async with d.store.transaction() as tx:
            await idempotency.claim(tx, idem, now)
            out = await queue_reset(d, tx, to, origin, caller, now, confirmed=confirmed)
            if out.status == SendStatus.RATE_LIMITED:
                await idempotency.forget(tx, idem)
            elif idem is not None:  # the answer before delivery, kept for a retry
                await idempotency.remember(tx, idem, _result(out, None, dropped))
    except idempotency.Replayed as exc:
        return idempotency.replayed(exc, idem, ResetRequestResult)
    # The answer is built once, when it is known (a delivered request's says how it went).
    if out.status == SendStatus.RATE_LIMITED:
        await d.deliver(out.alert_rows)
        return _result(out, None, dropped)
    until = d.send_deadline()  # one wait for the call's emails, however many
    delivery = await d.deliver(out.rows, until=until)
    await d.deliver(out.alert_rows, until=until)
    if delivery is None:
        return _result(out, None, dropped)
    answer = _result(out, delivery, dropped)
    await idempotency.update(d.store, idem, answer)
    return answer


def _result(out: Queued, delivery: object, dropped: dict[str, bool]) -> ResetRequestResult:
    status = out.status
    if status == SendStatus.QUEUED and delivery is not None:
        status = _ANSWERED.get(delivery.status, status)  # type: ignore[attr-defined]
    return ResetRequestResult(
        request_id=out.send_id,
        status=status,
        expires_at=out.expires_at,
        retry_after=out.retry_after,
        reason=out.reason,
        approval_id=out.approval_id,
        delivery=delivery if out.status == SendStatus.QUEUED else None,  # type: ignore[arg-type]
        risk=out.risk,
        alert_queued=out.alert_queued,
        **dropped,
    )


@dataclass(frozen=True, slots=True)
class FactsInput:
    """What an agent may tell the owner in a security alert: typed facts, never prose."""

    at: datetime | None = None
    ip: str | None = None
    user_agent: str | None = None  # shown as our parser's device label
    location: str | None = None  # "City, Country" of letters, else GeoIP of `ip`


def alert_facts(d: Deps, given: FactsInput | None) -> AlertFacts | None:
    if given is None:
        return None
    at = given.at.replace(tzinfo=UTC) if given.at is not None and given.at.tzinfo is None else given.at
    ip = parse_ip(given.ip) if given.ip else None
    user_agent = single_line(given.user_agent, "facts.user_agent", 2048)
    place = single_line(given.location, "facts.location", 200)
    location = resolve_location(ip, place, d.geo) if ip is not None or place is not None else None
    facts = AlertFacts(
        at=at.astimezone(UTC) if at is not None else None,
        ip=str(ip) if ip is not None else None,
        device=parse_user_agent(user_agent).label() if user_agent else None,
        location=location.label if location is not None and location.source != "unknown" else None,
    )
    return facts if facts != AlertFacts() else None
