"""ResetService: the reset workflow, read top to bottom.

request -> (limits, abuse) -> policy gate -> token + outbox row in one transaction ->
delivered by the dispatcher (`request.py`; with an account directory `account_reset.py`,
which asks the directory for the recipient first). verify / consume check the signature,
then the store; consume is one conditional UPDATE, so two racing calls never both win.

The service knows nothing of MCP, HTTP or a database driver; every entry point (tools,
REST, CLI) calls these methods.
"""

from __future__ import annotations

import logging
import time

import anyio

from reset_mcp import contact_facts
from reset_mcp.compose import RequestContext
from reset_mcp.context import parse_user_agent, resolve_location
from reset_mcp.deps import STDIO_CALLER, Caller, Deps, lock_account
from reset_mcp.directory import check_account
from reset_mcp.errors import InvalidInputError
from reset_mcp.flows import idempotency
from reset_mcp.flows.account_reset import AccountInput, AccountOutcome, answer_in_step, lookup, request_by_account
from reset_mcp.flows.admin import AdminDesk
from reset_mcp.flows.alerts import queue_password_changed
from reset_mcp.flows.approvals import ApprovalDesk
from reset_mcp.flows.contacts import Contacts
from reset_mcp.flows.keys import KeyDesk
from reset_mcp.flows.reports import INVALID, report_unrequested
from reset_mcp.flows.request import ResetInput, request_caller_named
from reset_mcp.models import ConsumeResult, ReportResult, ResetRequestResult, RevokeResult, VerifyResult
from reset_mcp.policy import abuse
from reset_mcp.policy.throttle import RedeemThrottle, redeem_client
from reset_mcp.store.records import ContactEvent, TokenRecord
from reset_mcp.token_rows import token_refusal
from reset_mcp.tokens import TokenClaims, jti_hash
from reset_mcp.validation import identifier, normalize_email, parse_ip, single_line
from reset_mcp.vocab import Event, SendStatus

log = logging.getLogger(__name__)


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
        self,
        inp: ResetInput,
        caller: Caller = STDIO_CALLER,
        *,
        confirmed: bool | None = None,
        idempotency_key: str | None = None,
    ) -> ResetRequestResult:
        """Without a directory: the caller names the recipient (`request.request_caller_named`)."""
        if self.deps.directory is not None:
            raise InvalidInputError("an account directory is configured: give the account, not email and user_id")
        return await request_caller_named(self.deps, inp, caller, confirmed=confirmed, idempotency_key=idempotency_key)

    async def request_reset_for_account(
        self,
        inp: AccountInput,
        caller: Caller = STDIO_CALLER,
        *,
        confirmed: bool | None = None,
        idempotency_key: str | None = None,
    ) -> AccountOutcome:
        """With a directory: the caller names the account (`account_reset.request_by_account`)."""
        if self.deps.directory is None:
            raise InvalidInputError("no account directory is configured: give email and user_id")
        return await request_by_account(self.deps, inp, caller, confirmed=confirmed, idempotency_key=idempotency_key)

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
        self,
        *,
        email: str | None = None,
        user_id: str | None = None,
        reason: str,
        caller: Caller = STDIO_CALLER,
        account: str | None = None,
        idempotency_key: str | None = None,
    ) -> RevokeResult:
        """Revoke an account's outstanding links. With a directory the caller names the
        account, and the answer carries no count (it would tell whether the account exists)."""
        d = self.deps
        started = time.monotonic()  # answer_in_step's clock
        reason = single_line(reason, "reason", 500) or "revoked"
        if d.directory is not None:
            if account is None:
                raise InvalidInputError("an account directory is configured: give the account")
            account = check_account(account)
            args: dict[str, object] = {"account": account, "reason": reason}
        else:
            email = normalize_email(email) if email else None
            user_id = identifier(user_id, "user_id") if user_id else None
            if email is None and user_id is None:
                raise InvalidInputError("give email or user_id")
            args = {"email": email, "user_id": user_id, "reason": reason}
        now = d.clock.now()
        idem = idempotency.idem_for(caller.id, idempotency_key, "revoke_reset_tokens", args)
        if (earlier := await idempotency.earlier(d.store, idem, RevokeResult, now)) is not None:
            return earlier
        if account is not None:
            found = await lookup(d, account, caller)
            email, user_id = (found.email, found.user_id) if found is not None else (None, None)
        try:
            async with d.store.transaction() as tx:
                await idempotency.claim(tx, idem, now)
                count = await tx.revoke_tokens(user_id=user_id, email=email, now=now, reason=reason)
                subject = user_id or email or abuse.account_key(account or "")
                await d.audit(tx, caller.id, "tokens_revoked", subject, now, count=count, reason=reason)
                answer = RevokeResult(revoked=None if account is not None else count)
                await idempotency.remember(tx, idem, answer)
        except idempotency.Replayed as exc:
            return idempotency.replayed(exc, idem, RevokeResult)
        if account is not None:
            await answer_in_step(d, started)
        return answer

    async def report_unrequested_reset(self, token: str, caller: Caller = STDIO_CALLER) -> ReportResult:
        """The owner says "this wasn't me" (see `reports.report_unrequested`)."""
        return await report_unrequested(self.deps, token, caller)
