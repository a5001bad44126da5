"""Releasing an email: the one place outbox rows are written.

`Releaser.release` runs inside the caller's transaction, after the policy said send
(or a human approved): for a reset it mints the token record (revoking the user's
earlier outstanding tokens) and writes the outbox row in that same transaction, so the
token and its email commit together or not at all. The row is written already leased
to this process's dispatcher, which delivers it right after the commit (the fast path,
no queue wait); if this process dies first, the lease runs out and any worker resumes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reset_mcp.ids import new_id
from reset_mcp.outbox.dispatcher import Dispatcher
from reset_mcp.store import Tx
from reset_mcp.store.records import ContactEvent, OutboxRow, SendRecord, TokenRecord
from reset_mcp.tokens import TokenSigner, jti_hash

QUEUED_EVENT = "email_queued"


@dataclass(frozen=True, slots=True)
class Released:
    row: OutboxRow
    expires_at: datetime | None


class Releaser:
    def __init__(self, dispatcher: Dispatcher, signer: TokenSigner, ttl_minutes: int) -> None:
        self.dispatcher = dispatcher
        self.signer = signer
        self.ttl = timedelta(minutes=ttl_minutes)

    def _row(
        self,
        send_id: str,
        kind: str,
        recipient: str,
        payload: dict[str, Any],
        now: datetime,
        not_after: datetime | None,
    ) -> OutboxRow:
        row_id = new_id("msg")
        return OutboxRow(
            id=row_id,
            send_id=send_id,
            kind=kind,
            recipient=recipient,
            message_id=self.dispatcher.messages.message_id(row_id),
            status="sending",
            created_at=now,
            next_attempt_at=now,
            payload=payload,
            attempts=1,
            not_after=not_after,
            lease_owner=self.dispatcher.owner,
            lease_until=self.dispatcher.lease_until(now),
        )

    async def release(self, tx: Tx, send: SendRecord, now: datetime) -> Released:
        """Mint (for a reset) and write the outbox row of `send`, which the caller has
        already stored as `queued` (the gate inserts it so; an approval updates it)."""
        payload = dict(send.payload)
        not_after = None
        if send.kind == "password_reset":
            assert send.user_id is not None
            # The JWT carries whole seconds; the record, the row and the answer agree with it.
            expires = datetime.fromtimestamp(int((now + self.ttl).timestamp()), now.tzinfo)
            kid = self.signer.kid
            # A new link makes every earlier outstanding link of this user useless.
            await tx.revoke_tokens(user_id=send.user_id, email=None, now=now, reason="superseded by a new request")
            await tx.insert_token(
                TokenRecord(
                    jti_hash=jti_hash(self.signer.jti_for(send.id, kid)),
                    send_id=send.id,
                    user_id=send.user_id,
                    email=send.recipient,
                    kid=kid,
                    issued_at=now,
                    expires_at=expires,
                )
            )
            payload["claims"] = {
                "user_id": send.user_id,
                "email": send.recipient,
                "iat": int(now.timestamp()),
                "exp": int(expires.timestamp()),
                "kid": kid,
            }
            payload["ttl_minutes"] = int(self.ttl.total_seconds() // 60)
            not_after = expires
        row = self._row(send.id, send.kind, send.recipient, payload, now, not_after)
        await tx.insert_outbox(row)
        # Counted by the policy's per-address hourly cap.
        await tx.insert_event(
            ContactEvent(
                email=send.recipient,
                event_type=QUEUED_EVENT,
                created_at=now,
                user_id=send.user_id,
                metadata={"kind": send.kind, "request_id": send.id},
            )
        )
        return Released(row, not_after)

    async def notice(
        self,
        tx: Tx,
        *,
        overseer: str,
        about: SendRecord,
        decision: str,
        summary: str,
        now: datetime,
        approval_id: str | None = None,
        expires_at: datetime | None = None,
    ) -> OutboxRow:
        """A notice to the overseer about a send; it carries no token and no link to one."""
        notice = SendRecord(
            id=new_id("req"),
            kind="oversight_notice",
            recipient=overseer,
            user_id=None,
            status="queued",
            reason=None,
            requested_by="oversight",
            decision="send",
            created_at=now,
            updated_at=now,
            payload={"about": about.id},
        )
        await tx.insert_send(notice)
        payload = {
            "about_kind": about.kind,
            "about_recipient": about.recipient,
            "decision": decision,
            "summary": summary,
            "requested_by": about.requested_by,
            "approval_id": approval_id,
            "expires_at": expires_at.timestamp() if expires_at else None,
        }
        row = self._row(notice.id, "oversight_notice", overseer, payload, now, expires_at)
        await tx.insert_outbox(row)
        return row
