"""The dispatcher: the only code that calls an email backend.

It delivers outbox rows the policy released, and nothing else: a row exists only when
a flow wrote it after a `send` decision (or an approval). Two paths share one `_attempt`:

- the fast path: the flow writes the row already leased to a new attempt and hands it to
  `submit` straight after the commit, so a reset email leaves at once. The delivery runs
  in the dispatcher's own task group (`running`), never in the caller's task: the caller
  waits for it only as long as it likes (RESET_MCP_SEND_WAIT_SECONDS) and stops waiting
  without stopping it;
- the worker (`start_due` in the job runner's loop, `run_once` for the CLI and tests):
  it claims due rows (retries, rows given back, rows whose lease ran out because a
  process died) and delivers them.

At most `capacity` deliveries run at once: the backend's own limit (the SMTP pool's
connections, an HTTP provider's), so an attempt takes a slot first and then never
waits inside the backend while its lease runs. The worker claims only as many rows as it
has free slots; a fast-path row that gets no slot within the caller's wait is given back
`pending`, due at once, for the worker. `leases.py` keeps every attempt within its lease.

Failures are classified by the backend. Transient ones are retried with exponential
backoff and jitter (honouring a provider's Retry-After) until `max_attempts`; permanent
ones end `failed` at once with the provider's reason. One that may have arrived (a link
lost after the message went out, a send cut at its lease's end) is transient too: it
goes again after the backoff with the same Message-ID, never at once. A reset email
whose token expired or was revoked before it could leave is not sent: a dead link only
confuses the user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import anyio
from anyio.abc import TaskGroup

from reset_mcp.canonical import Canon
from reset_mcp.clock import Clock
from reset_mcp.emails.outgoing import MessageFactory
from reset_mcp.logs import where
from reset_mcp.mail import EmailBackend
from reset_mcp.outbox.attempts import Deliverer, DeliveryOutcome, RetryPolicy
from reset_mcp.outbox.leases import LeaseKeeper, new_attempt
from reset_mcp.store import Store
from reset_mcp.store.deadline import detached
from reset_mcp.store.records import OutboxRow
from reset_mcp.vocab import OutboxStatus

__all__ = ["DeliveryOutcome", "Dispatcher", "Observer", "RetryPolicy", "Ticket"]
log = logging.getLogger("reset_mcp.outbox.dispatcher")
DEFAULT_CAPACITY = 64  # deliveries at once for a backend without a limit of its own (outbox folder, memory)

Observer = Callable[[OutboxRow, "DeliveryOutcome"], Awaitable[None]]


class Ticket:
    """A delivery handed to `submit`; `wait` gives its outcome, or `sending` if not yet known."""

    __slots__ = ("done", "outcome", "row", "started")

    def __init__(self, row: OutboxRow) -> None:
        self.row = row
        self.done = anyio.Event()
        self.outcome: DeliveryOutcome | None = None
        self.started = time.perf_counter()

    async def wait(self, seconds: float) -> DeliveryOutcome:
        with anyio.move_on_after(seconds):
            await self.done.wait()
        if self.outcome is not None:
            return self.outcome
        elapsed = round((time.perf_counter() - self.started) * 1000, 3)
        return DeliveryOutcome(OutboxStatus.SENDING, elapsed, None, recorded=False)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        backend: EmailBackend,
        messages: MessageFactory,
        clock: Clock,
        *,
        retry: RetryPolicy | None = None,
        lease_seconds: float = 60.0,
        observers: Sequence[Observer] = (),
        capacity: int | None = None,
        canon: Canon | None = None,
    ) -> None:
        """`observers`: told of every recorded outcome (the App's metrics, say), in order.
        `capacity`: deliveries at once (default: the backend's `max_concurrency`); `canon`:
        the keys a delivery's contact event is counted under."""
        self.store = store
        self.backend = backend
        self.messages = messages
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self.leases = LeaseKeeper(store, clock, lease_seconds)
        self.capacity = capacity or getattr(backend, "max_concurrency", None) or DEFAULT_CAPACITY
        self._slots = anyio.Semaphore(self.capacity)
        self.canon = canon or Canon()
        self._deliverer = Deliverer(
            store, backend, messages, clock, self.retry, self.leases, self._slots, self.wake, self.canon
        )
        self._observers = tuple(observers)
        self._tg: TaskGroup | None = None
        self._wake = anyio.Event()
        self._inflight = 0
        self._idle = anyio.Event()
        self._idle.set()

    @property
    def lease_seconds(self) -> float:
        return self.leases.lease_seconds

    def lease_until(self, now: datetime) -> datetime:
        return self.leases.lease_until(now)

    def new_attempt(self) -> str:
        """The lease owner for a row a flow writes for the fast path: its own attempt."""
        return new_attempt()

    def wake(self) -> None:
        """Tell the worker there may be work before its next poll (a retry was scheduled)."""
        self._wake.set()

    async def wait_for_work(self, seconds: float) -> None:
        """Until `wake()` or `seconds` have passed."""
        self._wake = anyio.Event()
        with anyio.move_on_after(seconds):
            await self._wake.wait()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The task group deliveries run in, with the lease keeper; `build_app` enters it.
        On exit what is still in flight is cancelled (`wait_idle` first for a graceful stop)."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.leases.run)
                self._tg = tg
                try:
                    yield
                finally:
                    self._tg = None
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The task group wraps what the body raised (its tasks catch their own errors):
            # callers of `build_app` get the error the body raised, as they did before.
            if len(group.exceptions) == 1:
                raise group.exceptions[0]  # noqa: B904 - the group is only the wrapping
            raise

    def submit(self, row: OutboxRow, *, slot_wait: float) -> Ticket:
        """Deliver a row a flow just wrote (leased to its own attempt), in the background.
        Without a free slot within `slot_wait` seconds the row is given back to the worker."""
        if self._tg is None:
            raise RuntimeError("the dispatcher is not running (build_app enters `running()`)")
        ticket = Ticket(row)
        self._begin()
        self._tg.start_soon(self._run_ticket, ticket, slot_wait)
        return ticket

    async def _run_ticket(self, ticket: Ticket, slot_wait: float) -> None:
        try:
            with detached():  # not bound by the deadline of the call that submitted it
                ticket.outcome = await self._deliverer.attempt(ticket.row, claimed=False, slot_wait=slot_wait)
                ticket.done.set()
                await self._observe(ticket.row, ticket.outcome)
        except Exception as exc:
            log.error("outbox row %s: delivery ended with %s", ticket.row.id, where(exc))
        finally:
            ticket.done.set()
            self._end()

    # The worker ------------------------------------------------------------------------
    async def run_once(self, limit: int | None = None, *, wait: float = 5.0) -> int:
        """Claim the rows that are due (as many as there are free slots, waiting up to `wait`
        for one) and deliver them; how many were claimed."""
        rows, leased_at = await self._claim(limit, wait)
        if rows:
            async with anyio.create_task_group() as tg:
                for row in rows:
                    self._begin()
                    tg.start_soon(self._deliver_claimed, row, leased_at)
        return len(rows)

    async def start_due(self, *, wait: float) -> int:
        """The job runner's round: claim what is due for the free slots (waiting up to `wait`
        for one) and start delivering it in the dispatcher's task group; how many were claimed."""
        if self._tg is None:
            return await self.run_once(wait=wait)
        rows, leased_at = await self._claim(None, wait)
        for row in rows:
            self._begin()
            self._tg.start_soon(self._deliver_claimed, row, leased_at)
        return len(rows)

    async def _claim(self, limit: int | None, wait: float) -> tuple[list[OutboxRow], float]:
        got = await self._take_slots(min(limit or self.capacity, self.capacity), wait)
        rows: list[OutboxRow] = []
        leased_at = anyio.current_time()
        try:
            if got:
                now = self.clock.now()
                async with self.store.transaction() as tx:
                    # One attempt id per claim: each row it takes is that claim's attempt on it.
                    rows = await tx.claim_due_outbox(new_attempt(), now, self.lease_until(now), got)
        finally:
            for _ in range(got - len(rows)):
                self._slots.release()
        return rows, leased_at

    async def _take_slots(self, limit: int, wait: float) -> int:
        got = 0
        with anyio.move_on_after(wait):
            await self._slots.acquire()
            got = 1
        while 0 < got < limit:
            try:
                self._slots.acquire_nowait()
            except anyio.WouldBlock:
                break
            got += 1
        return got

    async def _deliver_claimed(self, row: OutboxRow, leased_at: float) -> None:
        # One row's failure (say, the store refusing its outcome) must not cancel its
        # siblings mid-send: that would leave them `sending` and risk a duplicate.
        try:
            with detached():
                outcome = await self._deliverer.attempt(row, claimed=True, slot_wait=None, leased_at=leased_at)
                await self._observe(row, outcome)
        except Exception as exc:
            log.error("outbox row %s: outcome not recorded (%s); retried when its lease ends", row.id, where(exc))
        finally:
            self._end()

    async def _observe(self, row: OutboxRow, outcome: DeliveryOutcome) -> None:
        if outcome.recorded:
            for observer in self._observers:
                await observer(row, outcome)

    def _begin(self) -> None:
        self._inflight += 1
        if self._idle.is_set():
            self._idle = anyio.Event()

    def _end(self) -> None:
        self._inflight -= 1
        if self._inflight == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a bounded drain at shutdown
        """Let in-flight deliveries finish (graceful shutdown)."""
        with anyio.move_on_after(timeout):
            await self._idle.wait()
