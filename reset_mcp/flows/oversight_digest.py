"""The overseer's digest: the notices the hourly cap held back, sent together.

The gate records a notice past the cap as a `NOTICE_DEFERRED` event on the overseer's
mailbox (`policy/gate.py`). The job runner calls `flush` every round; it is cheap when
nothing waits (a time check, then one indexed read now and then) and sends one digest
when deferred notices wait and no digest went out in the last DIGEST_EVERY. So the
overseer gets at most the cap's notices an hour plus one digest, however many emails
are held. Each digest's event records the newest deferred event it covers, so a notice
is listed once, whichever instance sends the digest (the check and the write happen
under the same lock the gate takes to count notices).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from reset_mcp.deps import Deps
from reset_mcp.emails import oversight_digest
from reset_mcp.emails.oversight_digest import MAX_ITEMS, DigestItem
from reset_mcp.models import DeliveryInfo
from reset_mcp.policy.gate import notice_cap
from reset_mcp.store import Tx
from reset_mcp.store.records import ContactEvent
from reset_mcp.vocab import Event

log = logging.getLogger(__name__)
DIGEST_EVERY = timedelta(hours=1)  # at most one digest in this long
LOOK_EVERY = timedelta(seconds=10)  # how often the store is asked (one read, no write lock)
LOOK_BACK = timedelta(days=7)  # deferred notices older than this are not listed (their approvals expired)
WAITING_READ = 5000  # deferred notices one digest covers (it lists MAX_ITEMS of them and counts the rest)


class OverseerDigest:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._next_look: datetime | None = None

    async def flush(self) -> DeliveryInfo | None:
        """Send the digest if one is due; its delivery, or None."""
        d = self.deps
        overseer = d.overseer_email
        now = d.clock.now()
        if not overseer or (self._next_look is not None and now < self._next_look):
            return None
        self._next_look = now + LOOK_EVERY
        mailbox = d.canon.mailbox(overseer)
        async with d.store.reading() as tx:  # most rounds end here, without the write lock
            due = await self._waiting(tx, mailbox, now, limit=1)
        if not due:
            return None
        async with d.store.transaction() as tx:
            await tx.lock(f"notices:{mailbox}")  # the gate's: no notice is deferred meanwhile
            waiting = await self._waiting(tx, mailbox, now, limit=WAITING_READ)
            if not waiting:
                return None
            items = tuple(DigestItem.load(e.metadata["item"]) for e in reversed(waiting[:MAX_ITEMS]))
            payload = oversight_digest.Payload(
                items, more=len(waiting) - len(items), cap=notice_cap(d), timezone=d.releaser.overseer_timezone
            )
            row = await d.releaser.to_overseer(tx, oversight_digest.KIND.name, overseer, payload.dump(), now)
            await tx.insert_event(
                ContactEvent(
                    email=overseer,
                    event_type=Event.DIGEST_QUEUED,
                    created_at=now,
                    metadata={"request_id": row.send_id, "through_id": max(e.id or 0 for e in waiting)},
                    mailbox=mailbox,
                )
            )
            await d.audit(tx, "oversight", "digest_queued", row.send_id, now, notices=len(waiting))
        log.info("oversight digest of %d held-back notices queued for the overseer", len(waiting))
        return await d.deliver([row])

    async def _waiting(self, tx: Tx, mailbox: str, now: datetime, *, limit: int) -> list[ContactEvent]:
        """The deferred notices not in a digest yet, newest first; none while the last
        digest is younger than DIGEST_EVERY."""
        last = await tx.list_events(mailbox=mailbox, event_types=(Event.DIGEST_QUEUED,), limit=1)
        if last and last[0].created_at > now - DIGEST_EVERY:
            self._next_look = max(self._next_look or now, last[0].created_at + DIGEST_EVERY)
            return []
        through = int(last[0].metadata.get("through_id") or 0) if last else 0
        since = max(last[0].created_at, now - LOOK_BACK) if last else now - LOOK_BACK
        waiting = await tx.list_events(mailbox=mailbox, event_types=(Event.NOTICE_DEFERRED,), since=since, limit=limit)
        return [e for e in waiting if (e.id or 0) > through]
