"""A reset with an account directory: the agent names an account, the directory names the recipient.

    limits the agent can see (caller budget, account as named, IP): before the lookup,
        the same for every account, counted under `policy.abuse.account_key`
    -> directory lookup, outside any transaction (no lock held across the network)
    -> one transaction: the limits again under their locks, then for a known account
       `request.queue_reset` (the mailbox's own limits apply there, silently), for an
       unknown one an audit entry and nothing else
    -> delivery beside the answer, and the answer at a whole multiple of
       RESET_MCP_DIRECTORY_ANSWER_STEP_MS after the request began.

The agent hears `accepted` or `rate_limited` and nothing that differs between a known
and an unknown account: no recipient, no delivery, no risk, no approval. The overseer
sees all of it (the approvals page, the audit log). A directory that cannot answer is a
tool error; nothing is sent and nothing is counted.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

from reset_mcp.alarm import sleep_until
from reset_mcp.deps import Caller, Deps, lock_account
from reset_mcp.directory import Account, check_account
from reset_mcp.errors import DirectoryUnavailableError
from reset_mcp.flows import idempotency
from reset_mcp.flows.request import Recipient, origin_of, queue_reset
from reset_mcp.ids import new_id
from reset_mcp.models import AccountAnswer
from reset_mcp.policy import abuse
from reset_mcp.store import Tx
from reset_mcp.store.records import ContactEvent, OutboxRow
from reset_mcp.validation import single_line
from reset_mcp.vocab import AccountStatus, Event, SendStatus

log = logging.getLogger(__name__)
UNAVAILABLE = "the account directory is unavailable; nothing was sent; try again later"


@dataclass(frozen=True, slots=True)
class AccountInput:
    account: str  # an email address or a user id, as the person gave it
    ip: str
    user_agent: str
    locale: str | None = None  # hints, used only when the directory gives none
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class AccountOutcome:
    answer: AccountAnswer  # all the agent may see
    approval_id: str | None = None  # a known account's send, held for a person (`confirm`)


async def lookup(d: Deps, account: str, caller: Caller) -> Account | None:
    assert d.directory is not None
    try:
        return await d.directory.lookup(account)
    except DirectoryUnavailableError as exc:
        # The detail is the operator's: a shape error for one account only would tell
        # the agent that this account exists.
        log.warning("account directory: %s", exc)
        async with d.store.transaction() as tx:
            await d.audit(tx, caller.id, "directory_unavailable", abuse.account_key(account), d.clock.now())
        raise DirectoryUnavailableError(UNAVAILABLE) from None


async def agent_limits(tx: Tx, d: Deps, caller: Caller, limits: AccountLimits) -> abuse.RateVerdict:
    """The caller's budget, then the account (as named) and the IP: what an agent may hear."""
    now = d.clock.now()
    verdict = await abuse.caller_budget(tx, caller.id, d.caller_sends_per_hour, now)
    if verdict.limited:
        return verdict
    rules = abuse.AbuseRules(account_per_hour=limits.per_hour, ip_per_hour=d.rules.ip_per_hour)
    return await abuse.check_rate_limits(
        tx, rules, now, mailbox=limits.key, net=limits.net, event=limits.event.event_type
    )


async def answer_in_step(d: Deps, started: float) -> None:
    """Return at a whole multiple of the answer step after `started` (`time.monotonic()`).

    Not the loop's own timer alone: its lateness depends on what else the loop ran during
    the wait (epoll's whole milliseconds, see `alarm`), and a known account's delivery runs
    then; `sleep_until` wakes at the moment, whatever ran.
    """
    step = d.answer_step
    if step <= 0:
        return
    elapsed = time.monotonic() - started
    await sleep_until(started + step * max(1, math.ceil(elapsed / step)))


@dataclass(frozen=True, slots=True)
class AccountLimits:
    key: str  # abuse.account_key of the account as named
    per_hour: int
    event: ContactEvent  # written for every accepted request, known or not; counted by the limits
    net: str | None = None  # also limited per host network (`Canon.net` of the requester's IP)


@dataclass(slots=True)
class Done:
    """What the work for a known account did."""

    request_id: str
    rows: list[OutboxRow] = field(default_factory=list)
    approval_id: str | None = None  # held for a person's decision


Work = Callable[[Tx, Account], Awaitable[Done]]


async def for_account(
    d: Deps,
    caller: Caller,
    account: str,
    limits: AccountLimits,
    work: Work,
    *,
    kind: str,
    idem: idempotency.Idem | None,
    started: float,
) -> AccountOutcome:
    """The shape every directory-mode tool shares (see the module docstring)."""
    now = d.clock.now()
    if (earlier := await idempotency.earlier(d.store, idem, AccountAnswer, now)) is not None:
        await answer_in_step(d, started)
        return AccountOutcome(earlier)
    async with d.store.reading() as tx:
        limited = (await agent_limits(tx, d, caller, limits)).limited
    found = None if limited else await lookup(d, account, caller)
    done: Done | None = None
    try:
        async with d.store.transaction() as tx:
            await idempotency.claim(tx, idem, now)
            # Lock order: the account as named, the mailbox, the IP (as `queue_reset` takes them).
            await tx.lock(limits.key)
            if found is not None:
                await lock_account(tx, d.canon.mailbox(found.email))
            if limits.net is not None:
                await tx.lock(f"ip:{limits.net}")
            verdict = await agent_limits(tx, d, caller, limits)
            if verdict.limited:
                await idempotency.forget(tx, idem)
                await d.audit(tx, caller.id, "rate_limited", limits.key, now, reason=verdict.reason, ip=limits.net)
                answer = AccountAnswer(
                    request_id=new_id("req"),
                    status=AccountStatus.RATE_LIMITED,
                    retry_after=verdict.retry_after,
                    reason=verdict.reason,
                )
            else:
                await tx.insert_event(limits.event)
                await tx.insert_event(abuse.caller_send(caller.id, now, kind))
                if found is None:
                    request_id = new_id("req")
                    await d.audit(tx, caller.id, "unknown_account", request_id, now, account=account, kind=kind)
                else:
                    done = await work(tx, found)
                    request_id = done.request_id
                answer = AccountAnswer(request_id=request_id, status=AccountStatus.ACCEPTED)
                await idempotency.remember(tx, idem, answer)
    except idempotency.Replayed as exc:
        await answer_in_step(d, started)
        return AccountOutcome(idempotency.replayed(exc, idem, AccountAnswer))
    if done is not None:
        d.deliver_soon(done.rows)
    await answer_in_step(d, started)
    return AccountOutcome(answer, done.approval_id if done is not None else None)


async def request_by_account(
    d: Deps,
    inp: AccountInput,
    caller: Caller,
    *,
    confirmed: bool | None = None,
    idempotency_key: str | None = None,
) -> AccountOutcome:
    started = time.monotonic()  # answer_in_step's clock
    account = check_account(inp.account)
    origin = origin_of(d, inp.ip, inp.user_agent)
    ip = str(origin.ip)
    locale, timezone = single_line(inp.locale, "locale", 35), single_line(inp.timezone, "timezone", 64)
    now = d.clock.now()
    key, net = abuse.account_key(account), d.canon.net(origin.ip)
    event = ContactEvent(
        email=key,
        event_type=Event.ACCOUNT_REQUESTED,
        created_at=now,
        ip=ip,
        device=origin.device.family_key(),
        country=origin.location.country_code,
        metadata={"requested_by": caller.id},
        mailbox=key,
        net=net,
    )

    async def reset(tx: Tx, found: Account) -> Done:
        to = Recipient(found.email, found.user_id, found.name, found.locale or locale, found.timezone or timezone)
        out = await queue_reset(d, tx, to, origin, caller, now, confirmed=confirmed, ip_limit=False, budget=False)
        held = out.approval_id if out.status == SendStatus.PENDING_APPROVAL else None
        return Done(out.send_id, [*out.rows, *out.alert_rows], held)

    args = asdict(inp) if idempotency_key is not None else {}  # hashed only with a key
    idem = idempotency.idem_for(caller.id, idempotency_key, "request_password_reset", args)
    limits = AccountLimits(key, d.rules.account_per_hour, event, net)
    return await for_account(d, caller, account, limits, reset, kind="password_reset", idem=idem, started=started)
