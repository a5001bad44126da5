"""Leases of delivery attempts: one attempt in flight per outbox row, anywhere.

An outbox row is handed to one delivery attempt at a time: the attempt's id is the
row's `lease_owner` (a fresh id for each fast-path row and each worker claim, never one
per process), and the store accepts an outcome, a renewal or a give-back only from the
attempt holding the row now. What keeps a second attempt from starting while the first
is still sending is the lease's end (`lease_until`), so an attempt must never outlive it:

- while an attempt is in flight its lease is renewed every third of its length
  (`LeaseKeeper.run`, all live attempts in one transaction);
- its waiting and sending run in a cancel scope whose deadline is the lease's end as
  last confirmed, less a margin: if renewals fail (the database is down), the send is cut
  before the lease could run out, and the row is retried after the backoff as "may have
  arrived" rather than sent by a second attempt meanwhile;
- a renewal the store refuses means another attempt took the row over: this attempt is
  cut at once and records nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio

from reset_mcp.clock import Clock
from reset_mcp.errors import ResetMCPError
from reset_mcp.ids import new_id
from reset_mcp.store import Store
from reset_mcp.store.records import OutboxRow

log = logging.getLogger("reset_mcp.outbox.leases")


def new_attempt() -> str:
    """A delivery attempt's id, the lease owner of the row(s) it holds."""
    return new_id("att")


@dataclass(eq=False, slots=True)
class Attempt:
    """One attempt on one row. `scope` bounds its waiting and sending by its lease."""

    row: OutboxRow
    owner: str
    scope: anyio.CancelScope
    in_flight: bool = True  # waiting for a connection or sending; False once the send ended
    lost: bool = False  # another attempt holds the row now: record nothing
    renewals: int = 0

    @property
    def cut(self) -> bool:
        """The send was stopped by the lease's deadline (or a takeover), not finished."""
        return self.scope.cancelled_caught


class LeaseKeeper:
    def __init__(self, store: Store, clock: Clock, lease_seconds: float) -> None:
        self.store = store
        self.clock = clock
        self.lease_seconds = lease_seconds
        # What the lease must still have left when a send is cut: time to record the
        # outcome, and slack for the database's clock and ours running at other rates.
        self.margin = lease_seconds / 6
        self._live: set[Attempt] = set()

    def lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_seconds)

    def hold(self, row: OutboxRow, owner: str, *, leased_at: float) -> Attempt:
        """Start tracking an attempt whose lease was taken at monotonic time `leased_at`
        (at or before the statement that wrote it)."""
        deadline = leased_at + self.lease_seconds - self.margin
        attempt = Attempt(row, owner, anyio.CancelScope(deadline=deadline))
        self._live.add(attempt)
        return attempt

    def drop(self, attempt: Attempt) -> None:
        self._live.discard(attempt)

    async def run(self) -> None:
        """Renew every live attempt's lease every third of its length, until cancelled."""
        while True:
            await anyio.sleep(self.lease_seconds / 3)
            await self.renew_all()

    async def renew_all(self) -> None:
        live = [a for a in self._live if a.in_flight]
        if not live:
            return
        started, now = anyio.current_time(), self.clock.now()
        try:
            async with self.store.transaction() as tx:
                kept = [await tx.renew_outbox(a.row.id, a.owner, now, self.lease_until(now)) for a in live]
        except ResetMCPError as exc:
            # The deadlines stand as last confirmed: the sends are cut before the leases end.
            log.warning("could not renew %d delivery lease(s): %s", len(live), exc)
            return
        for attempt, ok in zip(live, kept, strict=True):
            if ok:
                attempt.scope.deadline = max(attempt.scope.deadline, started + self.lease_seconds - self.margin)
                attempt.renewals += 1
            elif attempt.in_flight and attempt in self._live:
                attempt.lost = True
                attempt.scope.cancel()
                log.warning("outbox row %s was taken over by another attempt; this one stops", attempt.row.id)
