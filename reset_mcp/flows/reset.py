"""ResetService: the reset workflow, read top to bottom.

request -> (limits, abuse) -> policy gate -> token + outbox row in one transaction ->
delivered at once by the dispatcher. verify / consume check the signature, then the
store; consume is one conditional UPDATE, so two racing calls never both win.

The service knows nothing of MCP, HTTP or a database driver; every entry point (tools,
REST, CLI) calls these methods.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio

from reset_mcp import contact_facts
from reset_mcp.compose import RequestContext
from reset_mcp.context import parse_user_agent, resolve_location
from reset_mcp.deps import STDIO_CALLER, Caller, Deps, lock_account
from reset_mcp.emails import password_reset
from reset_mcp.errors import InvalidInputError
from reset_mcp.flows.admin import AdminDesk
from reset_mcp.flows.alerts import AUTO_ALERT_REASON, queue_password_changed, queue_security_alert
from reset_mcp.flows.approvals import ApprovalDesk
from reset_mcp.flows.contacts import Contacts
from reset_mcp.flows.keys import KeyDesk
from reset_mcp.flows.reports import INVALID, report_unrequested
from reset_mcp.models import ConsumeResult, ReportResult, ResetRequestResult, RevokeResult, VerifyResult
from reset_mcp.policy import abuse
from reset_mcp.policy.gate import gate
from reset_mcp.policy.throttle import RedeemThrottle, redeem_client
from reset_mcp.store.records import ContactEvent, SendRecord, TokenRecord
from reset_mcp.token_rows import token_refusal
from reset_mcp.tokens import TokenClaims, jti_hash
from reset_mcp.validation import identifier, normalize_email, parse_ip, single_line
from reset_mcp.vocab import Event, OutboxStatus, Risk, SendStatus

log = logging.getLogger(__name__)
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


class ResetService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.throttle = RedeemThrottle()
        self.approvals = ApprovalDesk(deps)
        self.contacts = Contacts(deps)
        self.admin = AdminDesk(deps, self.approvals)
        self.keys = KeyDesk(deps)

    # Request -------------------------------------------------------------------------
    async def request_password_reset(
        self, inp: ResetInput, caller: Caller = STDIO_CALLER, *, confirmed: bool | None = None
    ) -> ResetRequestResult:
        d = self.deps
        email = normalize_email(inp.email)
        user_id = identifier(inp.user_id, "user_id")
        ip = parse_ip(inp.ip)
        # Limits, locks and risk count on these keys; the email still goes to `email`.
        mailbox, net = d.canon.mailbox(email), d.canon.net(ip)
        name = single_line(inp.name, "name", 200)
        locale = single_line(inp.locale, "locale", 35)
        timezone = single_line(inp.timezone, "timezone", 64)
        device = parse_user_agent(inp.user_agent or "")
        location = resolve_location(ip, single_line(inp.location, "location", 200), d.geo)
        now = d.clock.now()
        ctx = RequestContext(at=now, ip=str(ip), device=device.label(), location=location.label)
        event = ContactEvent(
            email=email,
            user_id=user_id,
            event_type=Event.RESET_REQUESTED,
            created_at=now,
            ip=str(ip),
            device=device.family_key(),
            country=location.country_code,
            metadata={"device_label": device.label(), "location": location.label, "requested_by": caller.id},
            mailbox=mailbox,
            net=net,
        )
        payload = password_reset.Payload(context=ctx, to_name=name, locale=locale, timezone=timezone)
        send = SendRecord.new(password_reset.KIND.name, email, user_id, caller.id, payload.dump(), now)
        alert_rows = []
        async with d.store.transaction() as tx:
            # Count-then-insert under the account's and the network's locks: concurrent
            # requests on several instances cannot all slip under the limit.
            await lock_account(tx, mailbox)
            await tx.lock(f"ip:{net}")
            limit = await abuse.check_rate_limits(tx, d.rules, now, mailbox=mailbox, net=net)
            if limit.limited:
                event.event_type = Event.RESET_RATE_LIMITED
                await tx.insert_event(event)
                await contact_facts.remember(tx, mailbox, event)
                send.status, send.reason, send.decision = SendStatus.RATE_LIMITED, limit.reason, SendStatus.RATE_LIMITED
                await tx.insert_send(send)
                await d.audit(tx, caller.id, "rate_limited", send.id, now, reason=limit.reason, ip=str(ip))
                report = await abuse.account_report(tx, d.rules, now, mailbox=mailbox, user_id=None)
            else:
                await tx.insert_event(event)
                await contact_facts.remember(tx, mailbox, event)
                gated = await gate(d, tx, send, now, confirmed=confirmed)
                report = await abuse.account_report(tx, d.rules, now, mailbox=mailbox, user_id=None)
            alert_queued = False
            if report.risk == Risk.HIGH:
                alerted, _ = await queue_security_alert(
                    d,
                    tx,
                    email=email,
                    user_id=user_id,
                    reason=AUTO_ALERT_REASON,
                    # The reason's sentence and the attempts tell the owner, in their language;
                    # the detector's notes (English, for agents) are `check_reset_abuse`'s.
                    details=None,
                    now=now,
                    requested_by="abuse-detector",
                    window_minutes=d.rules.window_minutes,
                    locale=locale,
                    timezone=timezone,
                )
                if alerted is not None:
                    alert_queued = True
                    alert_rows = alerted.rows
        if limit.limited:
            await d.deliver(alert_rows)
            return ResetRequestResult(
                request_id=send.id,
                status=SendStatus.RATE_LIMITED,
                retry_after=limit.retry_after,
                reason=limit.reason,
                risk=report.risk,
                alert_queued=alert_queued,
            )
        until = d.send_deadline()  # one wait for the call's emails, however many
        delivery = await d.deliver(gated.rows, until=until)
        await d.deliver(alert_rows, until=until)
        status = gated.status
        if status == SendStatus.QUEUED and delivery is not None:
            status = _ANSWERED.get(delivery.status, status)
        return ResetRequestResult(
            request_id=send.id,
            status=status,
            expires_at=gated.expires_at,
            reason=gated.reason,  # type: ignore[arg-type]
            approval_id=gated.approval_id,
            delivery=delivery if gated.status == SendStatus.QUEUED else None,
            risk=report.risk,
            alert_queued=alert_queued,
        )

    # Verify and consume --------------------------------------------------------------
    async def _check(
        self, token: str, caller: Caller, action: str, client: str | None
    ) -> tuple[TokenClaims | None, TokenRecord | None]:
        d = self.deps
        now = d.clock.now()
        self.throttle.check(caller.id, client, token, now)
        decoded = d.signer.decode(token, now)
        failure = decoded.failure
        record = None
        if decoded.claims is not None and failure is None:
            async with d.store.reading() as tx:
                record = await tx.get_token(jti_hash(decoded.claims.jti))
            if record is None:
                failure = "unknown"
            elif (why := token_refusal(d.signer, record, decoded.claims)) is not None:
                failure = why  # a row someone wrote or edited without the secret
            elif record.consumed_at is not None:
                failure = "consumed"
            elif record.revoked_at is not None:
                failure = "revoked"
            elif record.expires_at <= now:
                failure = "expired"
        if failure is not None:
            async with d.store.transaction() as tx:
                subject = record.send_id if record else "token"
                await d.audit(tx, caller.id, f"{action}_refused", subject, now, reason=failure)
            delay = self.throttle.failed(caller.id, client, token, now)
            if delay:  # many failures everywhere: slow every failing caller down, lock no one out
                await anyio.sleep(delay)
            return None, None
        self.throttle.succeeded(caller.id, client)
        return decoded.claims, record

    async def verify_reset_token(
        self, token: str, caller: Caller = STDIO_CALLER, *, ip: str | None = None
    ) -> VerifyResult:
        """`ip`: the end user's address, when the app knows it (failures are counted per client)."""
        client = redeem_client(parse_ip(ip) if ip else None, caller.peer)
        claims, record = await self._check(token, caller, "verify", client)
        if claims is None or record is None:
            return VerifyResult(valid=False, reason=INVALID)
        return VerifyResult(valid=True, user_id=record.user_id, email=record.email, expires_at=record.expires_at)

    async def consume_reset_token(
        self,
        token: str,
        caller: Caller = STDIO_CALLER,
        *,
        ip: str | None = None,
        user_agent: str | None = None,
        locale: str | None = None,
        timezone: str | None = None,
    ) -> ConsumeResult:
        d = self.deps
        ctx = None
        parsed = parse_ip(ip) if ip else None
        if parsed is not None or user_agent:
            # The notice shows what the reset page passed on; a part it did not pass reads "unknown".
            ctx = RequestContext(
                at=d.clock.now(),
                ip=str(parsed) if parsed is not None else "unknown",
                device=parse_user_agent(user_agent or "").label(),
                location=resolve_location(parsed, None, d.geo).label,
            )
        claims, record = await self._check(token, caller, "consume", redeem_client(parsed, caller.peer))
        if claims is None or record is None:
            return ConsumeResult(consumed=False, reason=INVALID)
        now = d.clock.now()
        async with d.store.transaction() as tx:
            mailbox = d.canon.mailbox(record.email)
            await lock_account(tx, mailbox)
            if not await tx.consume_token(record.jti_hash, now):
                await d.audit(tx, caller.id, "consume_refused", record.send_id, now, reason="lost race or expired")
                won = False
            else:
                won = True
                revoked = await tx.revoke_tokens(
                    user_id=record.user_id, email=record.email, now=now, reason="password changed"
                )
                consumed = ContactEvent(
                    email=record.email,
                    user_id=record.user_id,
                    event_type=Event.RESET_CONSUMED,
                    created_at=now,
                    ip=str(parsed) if parsed is not None else None,
                    metadata={"request_id": record.send_id},
                    mailbox=mailbox,
                )
                await tx.insert_event(consumed)
                await contact_facts.remember(tx, mailbox, consumed)
                await d.audit(
                    tx,
                    caller.id,
                    "token_consumed",
                    record.send_id,
                    now,
                    user_id=record.user_id,
                    other_tokens_revoked=revoked,
                )
                # The notice follows the reset email it ends: its language, time zone and
                # greeting, unless the reset page passed others.
                reset = await tx.get_send(record.send_id)
                asked = reset.payload if reset is not None else {}
                notice = await queue_password_changed(
                    d,
                    tx,
                    email=record.email,
                    user_id=record.user_id,
                    now=now,
                    context=ctx,
                    locale=locale or asked.get("locale"),
                    timezone=timezone or asked.get("timezone"),
                    to_name=asked.get("to_name"),
                )
        if not won:
            return ConsumeResult(consumed=False, reason=INVALID)
        delivery = await d.deliver(notice.rows)
        # `delivery` reports the first row: the owner's notice only when it was released;
        # a held notice's rows are the overseer's, whose delivery says nothing of the owner's.
        notice_status = notice.status
        if notice.status == SendStatus.QUEUED and delivery is not None:
            notice_status = delivery.status
        return ConsumeResult(
            consumed=True,
            user_id=record.user_id,
            other_tokens_revoked=revoked,
            notice_status=notice_status,
        )

    # Revoke and report ---------------------------------------------------------------
    async def revoke_reset_tokens(
        self, *, email: str | None, user_id: str | None, reason: str, caller: Caller = STDIO_CALLER
    ) -> RevokeResult:
        d = self.deps
        email = normalize_email(email) if email else None
        user_id = identifier(user_id, "user_id") if user_id else None
        reason = single_line(reason, "reason", 500) or "revoked"
        if email is None and user_id is None:
            raise InvalidInputError("give email or user_id")
        now = d.clock.now()
        async with d.store.transaction() as tx:
            count = await tx.revoke_tokens(user_id=user_id, email=email, now=now, reason=reason)
            await d.audit(tx, caller.id, "tokens_revoked", user_id or email or "", now, count=count, reason=reason)
        return RevokeResult(revoked=count)

    async def report_unrequested_reset(self, token: str, caller: Caller = STDIO_CALLER) -> ReportResult:
        """The owner says "this wasn't me" (see `reports.report_unrequested`)."""
        return await report_unrequested(self.deps, token, caller)
