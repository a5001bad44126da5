"""The owner's "this wasn't me": the report that kills a link and raises the account's risk."""

from __future__ import annotations

from reset_mcp import contact_facts
from reset_mcp.deps import Caller, Deps, lock_account
from reset_mcp.models import ReportResult
from reset_mcp.policy import abuse
from reset_mcp.store.records import ContactEvent
from reset_mcp.token_rows import token_refusal
from reset_mcp.tokens import jti_hash
from reset_mcp.vocab import Event

INVALID = "This reset link is invalid or has expired."  # the one answer end users get


async def report_unrequested(deps: Deps, token: str, caller: Caller) -> ReportResult:
    """The owner says "this wasn't me": kill the link, note it, raise the account's risk.

    An expired link still counts as a report (the owner may click late), so only the
    signature must hold here, not the expiry.
    """
    d = deps
    now = d.clock.now()
    decoded = d.signer.decode(token, now)
    if decoded.claims is None or decoded.failure not in (None, "expired"):
        return ReportResult(reported=False, revoked=False, reason=INVALID)
    claims = decoded.claims
    async with d.store.transaction() as tx:
        record = await tx.get_token(jti_hash(claims.jti))
        if record is None:
            return ReportResult(reported=False, revoked=False, reason=INVALID)
        mailbox = d.canon.mailbox(record.email)
        await lock_account(tx, mailbox)  # before the token row (see `lock_account`); the facts are read, then written
        revoked = await tx.revoke_token(record.jti_hash, now, "reported as not requested by the owner")
        # Killing a link is always safe, but the account the report counts against comes
        # from the signed claims: a row someone edited must not steer risk onto another.
        if token_refusal(d.signer, record, claims) is not None:
            await d.audit(tx, caller.id, "reset_reported", record.send_id, now, revoked=revoked, row="refused")
            return ReportResult(reported=False, revoked=revoked, reason=INVALID)
        reported = ContactEvent(
            email=record.email,
            user_id=record.user_id,
            event_type=Event.RESET_REPORTED,
            created_at=now,
            metadata={"request_id": record.send_id},
            mailbox=mailbox,
        )
        await tx.insert_event(reported)
        await contact_facts.remember(tx, mailbox, reported)
        await d.audit(tx, caller.id, "reset_reported", record.send_id, now, revoked=revoked)
        report = await abuse.account_report(tx, d.rules, now, mailbox=mailbox, user_id=None)
    return ReportResult(reported=True, revoked=revoked, risk=report.risk)
