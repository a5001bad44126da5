"""Abuse verdicts and rate limits, computed from the store's event history.

Rules (all configurable, defaults from the security checklist):
- more than `high_attempts` (3) reset requests for one account in the window: high;
- `elevated_ips` (3) or more distinct networks in the window (an IPv4 address, or an
  IPv6 /64: `canonical.ip_key`): at least elevated;
- a country or a device (browser and OS family) never seen in the contact's earlier
  history raises the risk one step (only when there is a history to compare with);
- a "this wasn't me" report in the window raises the risk one step.

An account is a canonical mailbox (`canonical.canonical_mailbox`): plus tags, Gmail's
dots and googlemail.com are one account here. The verdict is pure: `assess` takes
events and returns a report, so every threshold is tested with hand-made events and an
injected clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reset_mcp.store import Tx
from reset_mcp.store.records import ContactEvent
from reset_mcp.vocab import ATTEMPTS, Event, Risk

LEVELS = (Risk.LOW, Risk.ELEVATED, Risk.HIGH)
HISTORY_DAYS = 90


@dataclass(frozen=True, slots=True)
class AbuseRules:
    high_attempts: int = 3  # more than this many in the window is high
    elevated_ips: int = 3  # this many distinct IPs or more is at least elevated
    window_minutes: int = 60
    account_per_hour: int = 5
    ip_per_hour: int = 20


@dataclass(slots=True)
class AbuseReport:
    attempts: int
    distinct_ips: list[str]
    distinct_devices: list[str]
    countries: list[str]
    first_attempt: datetime | None
    last_attempt: datetime | None
    risk: Risk
    reasons: list[str] = field(default_factory=list)
    recommended_action: str = "allow"
    ip_attempts: int | None = None


def _raise(level: int, to: int) -> int:
    return max(level, to)


def assess(
    window: Sequence[ContactEvent],
    history: Sequence[ContactEvent],
    rules: AbuseRules,
    *,
    ip_attempts: int | None = None,
    attempts: tuple[str, ...] = ATTEMPTS,
) -> AbuseReport:
    """`window`: this account's events in the window; `history`: its events before it.
    `attempts`: the event types that count as a request (a directory's: `ACCOUNT_ATTEMPTS`)."""
    requests = sorted((e for e in window if e.event_type in attempts), key=lambda e: e.created_at)
    ips = sorted({e.ip for e in requests if e.ip})
    nets = {e.net or e.ip for e in requests if e.ip}  # one host's many addresses count once
    devices = sorted({e.device for e in requests if e.device})
    countries = sorted({e.country for e in requests if e.country})
    level, reasons = 0, []
    if len(requests) > rules.high_attempts:
        level = 2
        reasons.append(
            f"{len(requests)} reset requests in {rules.window_minutes} minutes (more than {rules.high_attempts})"
        )
    if len(nets) >= rules.elevated_ips:
        level = _raise(level, 1)
        reasons.append(f"requests from {len(nets)} different IP addresses")
    if history:
        seen_countries = {e.country for e in history if e.country}
        seen_devices = {e.device for e in history if e.device}
        new_countries = [c for c in countries if seen_countries and c not in seen_countries]
        new_devices = [d for d in devices if seen_devices and d not in seen_devices]
        if new_countries:
            level = min(level + 1, 2)
            reasons.append(f"country never seen for this account: {', '.join(new_countries)}")
        if new_devices:
            level = min(level + 1, 2)
            reasons.append(f"device never seen for this account: {', '.join(new_devices)}")
    if any(e.event_type == Event.RESET_REPORTED for e in window):
        level = min(level + 1, 2)
        reasons.append("the owner reported a reset they did not request")
    if ip_attempts is not None and ip_attempts > rules.ip_per_hour:
        level = 2
        reasons.append(f"{ip_attempts} reset requests from this IP for any account")
    over_limit = len(requests) >= rules.account_per_hour
    action = ("allow", "captcha", "block" if over_limit else "alert")[level]
    return AbuseReport(
        attempts=len(requests),
        distinct_ips=ips,
        distinct_devices=devices,
        countries=countries,
        first_attempt=requests[0].created_at if requests else None,
        last_attempt=requests[-1].created_at if requests else None,
        risk=LEVELS[level],
        reasons=reasons,
        recommended_action=action,
        ip_attempts=ip_attempts,
    )


async def account_report(
    tx: Tx,
    rules: AbuseRules,
    now: datetime,
    *,
    mailbox: str | None,
    user_id: str | None,
    net: str | None = None,
    window_minutes: int | None = None,
    attempts: tuple[str, ...] = ATTEMPTS,
) -> AbuseReport:
    """`mailbox`: the canonical mailbox; `net`: also count this network's attempts."""
    minutes = window_minutes or rules.window_minutes
    since = now - timedelta(minutes=minutes)
    history_since = now - timedelta(days=HISTORY_DAYS)
    window, older = await _window_and_older(tx, mailbox, user_id, since, history_since, attempts)
    history = [e for e in older if e.created_at < since]
    ip_attempts = None
    if net:
        ip_attempts = sum([await tx.count_events(t, since, net=net) for t in attempts])
    scoped = AbuseRules(rules.high_attempts, rules.elevated_ips, minutes, rules.account_per_hour, rules.ip_per_hour)
    return assess(window, history, scoped, ip_attempts=ip_attempts, attempts=attempts)


WINDOW_LIMIT = 1000  # events of the window looked at
OLDER_LIMIT = 500  # attempts of the last HISTORY_DAYS looked at (the window's included)


async def _window_and_older(
    tx: Tx,
    mailbox: str | None,
    user_id: str | None,
    since: datetime,
    history_since: datetime,
    attempts: tuple[str, ...] = ATTEMPTS,
) -> tuple[list[ContactEvent], list[ContactEvent]]:
    """The window's events (attempts and reports, newest first, at most WINDOW_LIMIT) and
    the attempts since `history_since` (at most OLDER_LIMIT), read with one query.

    Both lists are prefixes of the same newest-first order, so one read of both kinds
    since `history_since` holds them unless it was cut off before OLDER_LIMIT attempts;
    only then (an account with over a thousand reports) is the second list read apart.
    """
    both = WINDOW_LIMIT + OLDER_LIMIT
    history_since = min(history_since, since)
    rows = await tx.list_events(
        mailbox=mailbox, user_id=user_id, since=history_since, event_types=(*attempts, Event.RESET_REPORTED), limit=both
    )
    window = [e for e in rows if e.created_at >= since][:WINDOW_LIMIT]
    older = [e for e in rows if e.event_type in attempts][:OLDER_LIMIT]
    if len(rows) == both and len(older) < OLDER_LIMIT:
        older = await tx.list_events(
            mailbox=mailbox, user_id=user_id, since=history_since, event_types=attempts, limit=OLDER_LIMIT
        )
    return window, older


def without_values(reason: str) -> str:
    """A reason without the country or device it names (`... never seen for this account`)."""
    return reason.split(": ", 1)[0]


def seconds_until_an_hour_after(oldest: datetime, now: datetime) -> int:
    """`retry_after` for an hourly limit: when the oldest counted event leaves the hour."""
    return max(1, int((oldest + timedelta(hours=1) - now).total_seconds()) + 1)


@dataclass(frozen=True, slots=True)
class RateVerdict:
    limited: bool
    retry_after: int = 0
    reason: str | None = None


async def check_rate_limits(
    tx: Tx, rules: AbuseRules, now: datetime, *, mailbox: str, net: str | None, event: str = Event.RESET_REQUESTED
) -> RateVerdict:
    """Per account (canonical mailbox) and per IP (host network) over the last hour,
    counting accepted requests only, so `retry_after` is exact: when the oldest accepted
    request leaves the hour, one more fits.

    With a directory `mailbox` is the account as the agent named it (`account_key`) and
    `event` the one such requests write; `net=None` leaves the IP limit to the caller."""
    since = now - timedelta(hours=1)
    checks = [("account", rules.account_per_hour, {"mailbox": mailbox})]
    if net is not None:
        checks.append(("IP address", rules.ip_per_hour, {"net": net}))
    for label, limit, key in checks:
        if await tx.count_events(event, since, **key, at_most=limit) >= limit:
            oldest = await tx.oldest_event_since(event, since, **key) or now
            retry = seconds_until_an_hour_after(oldest, now)
            return RateVerdict(True, retry, f"more than {limit} reset requests per hour for this {label}")
    return RateVerdict(False)


def account_key(account: str) -> str:
    """The events key of an account as the agent named it: the same for a known and an
    unknown account, so limits and verdicts cannot tell them apart."""
    return "account:" + account.casefold()


def caller_key(caller_id: str) -> str:
    return "caller:" + caller_id


async def caller_budget(tx: Tx, caller_id: str, per_hour: int, now: datetime) -> RateVerdict:
    """The per-caller budget across all addresses (RESET_MCP_CALLER_SENDS_PER_HOUR)."""
    since = now - timedelta(hours=1)
    key = caller_key(caller_id)
    if await tx.count_events(Event.CALLER_SEND, since, mailbox=key, at_most=per_hour) < per_hour:
        return RateVerdict(False)
    oldest = await tx.oldest_event_since(Event.CALLER_SEND, since, mailbox=key) or now
    return RateVerdict(
        True, seconds_until_an_hour_after(oldest, now), f"more than {per_hour} emails per hour for this caller"
    )


def caller_send(caller_id: str, now: datetime, kind: str) -> ContactEvent:
    """The event that spends one unit of the caller's budget."""
    key = caller_key(caller_id)
    return ContactEvent(email=key, event_type=Event.CALLER_SEND, created_at=now, metadata={"kind": kind}, mailbox=key)
