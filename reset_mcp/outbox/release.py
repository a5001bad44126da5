"""Releasing an email: the one place outbox rows are written.

`Releaser.release` runs inside the caller's transaction, after the policy said send
(or a human approved): for a kind that carries a token it mints the token record
(revoking the user's earlier outstanding tokens) and writes the outbox row in that same
transaction, so the token and its email commit together or not at all. The row is
written already leased to a delivery attempt of its own, which this process's
dispatcher runs right after the commit (the fast path, no queue wait); if this process
dies first, the lease runs out and any worker resumes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reset_mcp.canonical import Canon
from reset_mcp.emails import oversight_notice
from reset_mcp.emails.kind import Claims
from reset_mcp.ids import new_id
from reset_mcp.outbox.dispatcher import Dispatcher
from reset_mcp.store import Tx
from reset_mcp.store.records import ContactEvent, OutboxRow, SendRecord, TokenRecord
from reset_mcp.tokens import TokenSigner, jti_hash
from reset_mcp.vocab import Action, Event, OutboxStatus


@dataclass(frozen=True, slots=True)
class Released:
    row: OutboxRow
    expires_at: datetime | None


class Releaser:
    def __init__(
        self,
        dispatcher: Dispatcher,
        signer: TokenSigner,
        ttl_minutes: int,
        overseer_timezone: str | None = None,
        canon: Canon | None = None,
    ) -> None:
        """`canon`: the keys the contact events it writes are counted under."""
        self.dispatcher = dispatcher
        self.overseer_timezone = overseer_timezone  # times in the overseer's notices (None: UTC)
        self.canon = canon or Canon()
        self.kinds = dispatcher.messages.kinds
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
            status=OutboxStatus.SENDING,
            created_at=now,
            next_attempt_at=now,
            payload=payload,
            attempts=1,
            not_after=not_after,
            lease_owner=self.dispatcher.new_attempt(),  # this row's own attempt, not one per process
            lease_until=self.dispatcher.lease_until(now),
        )

    async def release(self, tx: Tx, send: SendRecord, now: datetime) -> Released:
        """Mint (for a kind that carries a token) and write the outbox row of `send`, which the
        caller has already stored as `queued` (the gate inserts it so; an approval updates it)."""
        payload = dict(send.payload)
        not_after = None
        if self.kinds[send.kind].carries_token:
            assert send.user_id is not None
            # The JWT carries whole seconds; the record, the row and the answer agree with it.
            expires = datetime.fromtimestamp(int((now + self.ttl).timestamp()), now.tzinfo)
            kid = self.signer.kid
            # A new link makes every earlier outstanding link of this user useless.
            await tx.revoke_tokens(user_id=send.user_id, email=None, now=now, reason="superseded by a new request")
            record = TokenRecord(
                jti_hash=jti_hash(self.signer.jti_for(send.id, kid)),
                send_id=send.id,
                user_id=send.user_id,
                email=send.recipient,
                kid=kid,
                issued_at=now,
                expires_at=expires,
            )
            # Its identity MACed: a database writer cannot point it elsewhere (`token_rows`).
            record.mac = self.signer.row_mac(record)
            await tx.insert_token(record)
            claims = Claims(send.user_id, send.recipient, int(now.timestamp()), int(expires.timestamp()), kid)
            payload["claims"] = claims.dump()
            payload["ttl_minutes"] = int(self.ttl.total_seconds() // 60)
            not_after = expires
        row = self._row(send.id, send.kind, send.recipient, payload, now, not_after)
        await tx.insert_outbox(row)
        # Counted by the policy's per-address hourly cap.
        await tx.insert_event(
            ContactEvent(
                email=send.recipient,
                event_type=Event.EMAIL_QUEUED,
                created_at=now,
                user_id=send.user_id,
                metadata={"kind": send.kind, "request_id": send.id},
                mailbox=self.canon.mailbox(send.recipient),
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
        given: dict[str, str] | None = None,
    ) -> OutboxRow:
        """A notice to the overseer about a send; it carries no token and no link to one."""
        requested_by = about.requested_by
        if requested_by.startswith("key:") and (key := await tx.get_api_key(requested_by[4:])) is not None:
            requested_by = f"{key.name} ({requested_by})"  # the name the overseer gave the key, and which key
        payload = oversight_notice.Payload(
            about_kind=about.kind,
            about_recipient=about.recipient,
            decision=decision,
            summary=summary,
            requested_by=requested_by,
            approval_id=approval_id,
            expires_at=expires_at,
            timezone=self.overseer_timezone,
            given=given or {},
        )
        return await self.to_overseer(
            tx, oversight_notice.KIND.name, overseer, payload.dump(), now, about=about.id, not_after=expires_at
        )

    async def to_overseer(
        self,
        tx: Tx,
        kind: str,
        overseer: str,
        payload: dict[str, Any],
        now: datetime,
        *,
        about: str | None = None,
        not_after: datetime | None = None,
    ) -> OutboxRow:
        """The overseer's own mail (a notice, a digest): a send the policy does not gate,
        its outbox row, and the event the hourly notice cap counts."""
        send = SendRecord.new(kind, overseer, None, "oversight", {"about": about} if about else {}, now)
        send.decision = Action.SEND
        await tx.insert_send(send)
        row = self._row(send.id, kind, overseer, payload, now, not_after)
        await tx.insert_outbox(row)
        await tx.insert_event(
            ContactEvent(
                email=overseer,
                event_type=Event.EMAIL_QUEUED,
                created_at=now,
                metadata={"kind": kind, "request_id": send.id},
                mailbox=self.canon.mailbox(overseer),
            )
        )
        return row
