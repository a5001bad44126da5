"""The dispatcher: the only code that calls an email backend.

It delivers outbox rows the policy released, and nothing else: a row exists only when
the service wrote it after a `send` decision (or an approval). Two paths share one
`_deliver`:

- the fast path: the service writes the row already leased to this dispatcher, and
  calls `deliver(row)` straight after the commit, so a reset email leaves at once;
- the worker (`run_once`, called by the job runner in `flows/jobs.py`): it claims due
  rows (retries, and rows whose lease ran out because a process died) and delivers them.

Failures are classified by the backend. Transient ones are retried with exponential
backoff and jitter (honouring a provider's Retry-After) until `max_attempts`; permanent
ones end `failed` at once with the provider's reason. A reset email whose token expired
or was revoked before it could leave is not sent: a dead link only confuses the user.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio

from reset_mcp.canonical import Canon
from reset_mcp.clock import Clock
from reset_mcp.emails.outgoing import MessageFactory
from reset_mcp.errors import DeliveryError, PermanentDeliveryError, ResetMCPError, TransientDeliveryError
from reset_mcp.ids import new_id
from reset_mcp.logs import where
from reset_mcp.mail import EmailBackend
from reset_mcp.outbox.outcomes import record_outcome
from reset_mcp.store import Store
from reset_mcp.store.records import OutboxRow
from reset_mcp.token_rows import outbox_refusal
from reset_mcp.vocab import OutboxStatus

log = logging.getLogger("reset_mcp.outbox.dispatcher")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 15.0
    max_seconds: float = 900.0

    def delay(self, attempts: int, retry_after: float | None) -> float:
        # Exponential with "equal jitter": never less than half the step, so a fleet of
        # failing rows spreads out without any of them retrying immediately.
        step = min(self.max_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        delay = step / 2 + random.uniform(0, step / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, 3600.0))
        return delay


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    status: OutboxStatus  # sent | pending (will retry) | failed | expired | cancelled
    elapsed_ms: float
    error: str | None = None


Observer = Callable[[OutboxRow, "DeliveryOutcome"], Awaitable[None]]


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
        canon: Canon | None = None,
    ) -> None:
        """`observers`: told of every outcome (the App's metrics, say), in order; `canon`: the
        keys a delivery's contact event is counted under."""
        self.store = store
        self.backend = backend
        self.messages = messages
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self.lease_seconds = lease_seconds
        self.owner = new_id("worker")
        self._observers = tuple(observers)
        self.canon = canon or Canon()
        self._wake = anyio.Event()
        self._inflight = 0
        self._idle = anyio.Event()
        self._idle.set()

    def lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_seconds)

    def wake(self) -> None:
        """Tell the worker there may be work before its next poll (a retry was scheduled)."""
        self._wake.set()

    async def wait_for_work(self, seconds: float) -> None:
        """Until `wake()` or `seconds` have passed."""
        self._wake = anyio.Event()
        with anyio.move_on_after(seconds):
            await self._wake.wait()

    async def deliver(self, row: OutboxRow, *, claimed: bool = False) -> DeliveryOutcome:
        """Deliver a row this dispatcher holds the lease on; never raises for delivery errors.

        `claimed` says the row came from a claim (a retry, a resumed or a re-queued row)
        rather than straight from the transaction that wrote it: its token is re-checked.
        """
        self._inflight += 1
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        try:
            outcome = await self._deliver(row, claimed)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()
        for observer in self._observers:
            await observer(row, outcome)
        return outcome

    async def _deliver(self, row: OutboxRow, claimed: bool) -> DeliveryOutcome:
        started = time.perf_counter()
        now = self.clock.now()

        def ms() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        if row.not_after is not None and now >= row.not_after:
            await self._finish(row, OutboxStatus.EXPIRED, now, "the reset link expired before it could be delivered")
            return DeliveryOutcome(OutboxStatus.EXPIRED, ms(), "link expired before delivery")
        kind = self.messages.kinds.get(row.kind)
        if kind is None:  # written by a build that knew a kind this one does not
            return await self._failed(row, PermanentDeliveryError(f"unknown email kind {row.kind!r}"), ms)
        if kind.carries_token and (claimed or row.attempts > 1):
            # On a retry (or a re-queued row, whose attempts start again from 0), the
            # token may have been used up or superseded meanwhile.
            async with self.store.transaction() as tx:
                token = await tx.get_token_for_send(row.send_id)
            # A row planted or edited by a database writer (no secret) would have a valid
            # link minted and mailed where it says: refused, and visibly (`failed`, audited).
            if (why := outbox_refusal(self.messages.signer, row, token)) is not None:
                return await self._refused(row, why, ms)
            if token is None or token.revoked_at is not None or token.consumed_at is not None:
                await self._finish(
                    row, OutboxStatus.CANCELLED, now, "the reset link was revoked or used before delivery"
                )
                return DeliveryOutcome(OutboxStatus.CANCELLED, ms(), "link no longer valid")
        try:
            email = self.messages.build(row, now)
            receipt = await self.backend.send(email)
        except DeliveryError as exc:
            return await self._failed(row, exc, ms)
        except ResetMCPError as exc:  # e.g. a header refused by mime.build_message
            return await self._failed(row, PermanentDeliveryError(str(exc)), ms)
        except Exception as exc:
            # A backend breaking its contract (or a rendering bug) must not strand the row
            # in `sending` nor kill the worker: retry it, and it ends `failed` visibly.
            log.error("delivery of %s raised %s", row.id, where(exc))
            return await self._failed(row, TransientDeliveryError(f"unexpected error: {type(exc).__name__}"), ms)
        await self._finish(row, OutboxStatus.SENT, self.clock.now(), None, receipt.provider_message_id)
        return DeliveryOutcome(OutboxStatus.SENT, ms())

    async def _refused(self, row: OutboxRow, why: str, ms: Callable[[], float]) -> DeliveryOutcome:
        error = "refused: token row failed its integrity check"
        log.warning("outbox row %s: %s (%s)", row.id, error, why)
        now = self.clock.now()
        await self._finish(row, OutboxStatus.FAILED, now, error, integrity=why)
        return DeliveryOutcome(OutboxStatus.FAILED, ms(), error)

    async def _failed(self, row: OutboxRow, exc: DeliveryError, ms: Callable[[], float]) -> DeliveryOutcome:
        now = self.clock.now()
        reason = exc.reason[:500]
        if isinstance(exc, PermanentDeliveryError) or row.attempts >= self.retry.max_attempts:
            final = (
                reason
                if isinstance(exc, PermanentDeliveryError)
                else f"gave up after {row.attempts} attempts: {reason}"
            )
            log.warning("delivery of %s failed for good: %s", row.id, final)
            await self._finish(row, OutboxStatus.FAILED, now, final)
            return DeliveryOutcome(OutboxStatus.FAILED, ms(), final)
        delay = self.retry.delay(row.attempts, exc.retry_after)
        log.info("delivery of %s failed (attempt %d), retrying in %.0fs: %s", row.id, row.attempts, delay, reason)
        await self._finish(row, OutboxStatus.PENDING, now, reason, next_attempt_at=now + timedelta(seconds=delay))
        self.wake()
        return DeliveryOutcome(OutboxStatus.PENDING, ms(), reason)

    async def _finish(
        self,
        row: OutboxRow,
        status: OutboxStatus,
        now: datetime,
        error: str | None,
        provider_message_id: str | None = None,
        next_attempt_at: datetime | None = None,
        integrity: str | None = None,
    ) -> None:
        async with self.store.transaction() as tx:
            done = await tx.finish_outbox(
                row.id,
                self.owner,
                status=status,
                now=now,
                error=error,
                provider_message_id=provider_message_id,
                next_attempt_at=next_attempt_at,
            )
            if done:
                kind = self.messages.kinds.get(row.kind)
                if integrity is not None:
                    await tx.append_audit(
                        at=now, actor="dispatcher", action="token_row_refused", subject=row.send_id,
                        detail={"outbox_id": row.id, "reason": integrity},
                    )  # fmt: skip
                to_overseer = kind is not None and kind.to_overseer
                mailbox = self.canon.mailbox(row.recipient)
                await record_outcome(tx, row, status, error, now, to_overseer=to_overseer, mailbox=mailbox)
        if not done:
            log.warning("outbox row %s was taken over by another worker; its outcome stands", row.id)

    # The worker ------------------------------------------------------------------------
    async def run_once(self, limit: int = 50) -> int:
        """Claim the rows that are due and deliver them; how many were claimed."""
        now = self.clock.now()
        async with self.store.transaction() as tx:
            rows = await tx.claim_due_outbox(self.owner, now, self.lease_until(now), limit)
        if rows:
            async with anyio.create_task_group() as tg:
                for row in rows:
                    tg.start_soon(self._deliver_claimed, row)
        return len(rows)

    async def _deliver_claimed(self, row: OutboxRow) -> None:
        # One row's failure (say, the store refusing its outcome) must not cancel its
        # siblings mid-send: that would leave them `sending` and risk a duplicate.
        try:
            await self.deliver(row, claimed=True)
        except Exception as exc:
            log.error("outbox row %s: outcome not recorded (%s); retried when its lease ends", row.id, where(exc))

    async def wait_idle(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a bounded drain at shutdown
        """Let in-flight deliveries finish (graceful shutdown)."""
        with anyio.move_on_after(timeout):
            await self._idle.wait()
