"""A mailbox's security facts, kept where recorded noise cannot reach them.

`get_contact` used to read the newest 500 events, so an agent recording a thousand
junk events (`record_contact_event`) erased the last reset request and the known IPs.
The facts now live in one row per canonical mailbox (`Tx.get_contact_facts`), written
only by reset-mcp's own events, in the transaction that records each:

- a reset request (accepted or refused by a limit): when, from where, to which spelling;
- an accepted request, a used link, a "this wasn't me" report: the user ids, IPs,
  devices and countries seen, each set capped, the least recently seen dropped first;
- a used link, a report: when.

Requests refused by a rate limit move only the "last request" facts and a counter: an
attacker can make those without limit, so they must not rotate the sets. Accepted
requests are limited per mailbox (and each emails the owner), so the sets turn over only
as fast as the limits allow.

`note` is pure (a dict in, a new dict out); `remember` runs it on a transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reset_mcp.store import Tx
from reset_mcp.store.records import ContactEvent, ContactFacts
from reset_mcp.vocab import Event

# The events whose facts are kept (all written by reset-mcp itself; `Event` may not be recorded by agents).
FACT_EVENTS = frozenset({Event.RESET_REQUESTED, Event.RESET_RATE_LIMITED, Event.RESET_CONSUMED, Event.RESET_REPORTED})
CAPS = {"user_ids": 20, "known_ips": 100, "devices": 20, "countries": 50}


def _seen(facts: dict[str, Any], key: str, value: str, at: float) -> None:
    seen: dict[str, float] = dict(facts.get(key) or {})
    seen[value] = max(at, seen.get(value, at))
    if len(seen) > CAPS[key]:
        for stale in sorted(seen, key=lambda v: seen[v])[: len(seen) - CAPS[key]]:
            del seen[stale]
    facts[key] = seen


def note(facts: dict[str, Any], event: ContactEvent) -> dict[str, Any]:
    """`facts` with `event` taken in (a new dict; events of other types change nothing)."""
    if event.event_type not in FACT_EVENTS:
        return facts
    out = dict(facts)
    at = event.created_at.timestamp()
    out["first_seen"] = min(at, out.get("first_seen", at))
    if event.event_type in (Event.RESET_REQUESTED, Event.RESET_RATE_LIMITED) and at >= out.get("last_request_at", 0):
        out.update(last_request_at=at, last_request_ip=event.ip, last_request_email=event.email)
    if event.event_type == Event.RESET_RATE_LIMITED:
        out["rate_limited"] = int(out.get("rate_limited", 0)) + 1
        return out
    if event.event_type == Event.RESET_CONSUMED:
        out["last_consumed_at"] = max(at, out.get("last_consumed_at", at))
    if event.event_type == Event.RESET_REPORTED:
        out["last_report_at"] = max(at, out.get("last_report_at", at))
    if event.user_id:
        _seen(out, "user_ids", event.user_id, at)
    if event.ip:
        _seen(out, "known_ips", event.ip, at)
    if event.device:
        _seen(out, "devices", str(event.metadata.get("device_label") or event.device), at)
    if event.country:
        _seen(out, "countries", event.country, at)
    return out


async def remember(tx: Tx, mailbox: str, event: ContactEvent) -> None:
    """Take `event` into `mailbox`'s facts. Run under `lock_account(mailbox)`: it reads
    the row, then writes it."""
    current = await tx.get_contact_facts(mailbox)
    merged = note(current.facts if current else {}, event)
    await tx.put_contact_facts(ContactFacts(mailbox, merged, event.created_at))


def when(facts: dict[str, Any], key: str) -> datetime | None:
    value = facts.get(key)
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else None


def newest_first(facts: dict[str, Any], key: str) -> list[str]:
    seen: dict[str, float] = facts.get(key) or {}
    return sorted(seen, key=lambda v: (-seen[v], v))
