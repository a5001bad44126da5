"""The one background job runner of a serving process: deliver, expire approvals, purge.

Two loops in one task group, so a long purge (minutes, at a million rows) never delays
a delivery:
- every poll (or at once when the dispatcher is woken): end approvals past their
  window, then claim the outbox rows that are due (retries, rows given back, rows a dead
  process left), as many as the backend has free connections for, and deliver them, then
  send the overseer's digest if one is due;
- now and then, when retention is on: delete what ended long ago (`retention_loop`).
`stop()` ends the loop; the deliveries in flight run in the dispatcher's task group and
are let finish by `build_app` (`Dispatcher.wait_idle`): cancelling would leave rows
`sending`, to go out again after their lease although the provider may have taken them.
"""

from __future__ import annotations

import logging

import anyio

from reset_mcp.clock import Clock
from reset_mcp.errors import ResetMCPError
from reset_mcp.flows.approvals import ApprovalDesk
from reset_mcp.flows.oversight_digest import OverseerDigest
from reset_mcp.flows.retention import retention_loop
from reset_mcp.logs import where
from reset_mcp.outbox.dispatcher import Dispatcher
from reset_mcp.store import Store

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(
        self,
        dispatcher: Dispatcher,
        approvals: ApprovalDesk,
        store: Store,
        clock: Clock,
        *,
        poll_seconds: float = 1.0,
        retention_days: int = 0,
        digest: OverseerDigest | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.digest = digest
        self.approvals = approvals
        self.store = store
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.retention_days = retention_days
        self._stopping = False

    async def run_once(self) -> int:
        """One round: expire overdue approvals, deliver what is due, send a due digest; how
        many rows were claimed."""
        await self.approvals.expire_due()
        claimed = await self.dispatcher.run_once()
        if self.digest is not None:
            await self.digest.flush()
        return claimed

    async def _round(self) -> int:
        # As `run_once`, but the claimed rows are delivered in the dispatcher's task group,
        # so the next claim fills each connection as soon as it is free.
        await self.approvals.expire_due()
        claimed = await self.dispatcher.start_due(wait=self.poll_seconds)
        if self.digest is not None:
            await self.digest.flush()
        return claimed

    async def run(self) -> None:
        """Both loops, until `stop()` (graceful) or cancelled."""
        async with anyio.create_task_group() as tg:
            if self.retention_days:
                tg.start_soon(retention_loop, self.store, self.clock, self.retention_days)
            await self._delivery_loop()
            tg.cancel_scope.cancel()  # the purge is batched: stopping between batches loses nothing

    def stop(self) -> None:
        """Make `run` return once its current round of deliveries is done."""
        self._stopping = True
        self.dispatcher.wake()

    async def _delivery_loop(self) -> None:
        while not self._stopping:
            try:
                claimed = await self._round()
            except ResetMCPError as exc:
                log.error("outbox worker: %s", exc)
                claimed = 0
            except Exception as exc:  # the worker outlives any one bad poll
                log.error("outbox worker: %s", where(exc))
                claimed = 0
            if claimed or self._stopping:
                continue
            await self.dispatcher.wait_for_work(self.poll_seconds)
