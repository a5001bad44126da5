"""The dispatcher: the only code that calls an email backend.

It delivers outbox rows the policy released, and nothing else: a row exists only when
the service wrote it after a `send` decision (or an approval). Two paths share one
`_deliver`:

- the fast path: the service writes the row already leased to this dispatcher, and
  calls `deliver(row)` straight after the commit, so a reset email leaves at once;
- the worker: every poll it expires overdue approvals, claims due rows (retries, and
  rows whose lease ran out because a process died) and delivers them.

Failures are classified by the backend. Transient ones are retried with exponential
backoff and jitter (honouring a provider's Retry-After) until `max_attempts`; permanent
ones end `failed` at once with the provider's reason. A reset email whose token expired
or was revoked before it could leave is not sent: a dead link only confuses the user.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio

from reset_mcp.clock import Clock
from reset_mcp.emails.outgoing import MessageFactory
from reset_mcp.errors import DeliveryError, PermanentDeliveryError, ResetMCPError, TransientDeliveryError
from reset_mcp.ids import new_id
from reset_mcp.mail import EmailBackend
from reset_mcp.outbox.outcomes import record_outcome
from reset_mcp.store import Store
from reset_mcp.store.records import OutboxRow

log = logging.getLogger("reset_mcp.outbox.dispatcher")


def _where(exc: BaseException) -> str:
    # The type and the line, not the message: a driver's text may quote the email, link and all.
    frames = traceback.extract_tb(exc.__traceback__)
    place = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{place}"


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
    status: str  # sent | pending (will retry) | failed | expired | cancelled | skipped
    elapsed_ms: float
    error: str | None = None


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
        on_delivered: Callable[[OutboxRow, DeliveryOutcome], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.messages = messages
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self.lease_seconds = lease_seconds
        self.owner = new_id("worker")
        self.on_delivered = on_delivered
        self.on_expire_approvals: Callable[[], Awaitable[int]] | None = None
        self._wake = anyio.Event()
        self._stopping = False
        self._inflight = 0
        self._idle = anyio.Event()
        self._idle.set()

    def lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_seconds)

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Make `run_forever` return once its current round of deliveries is done."""
        self._stopping = True
        self._wake.set()

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
        if self.on_delivered is not None:
            await self.on_delivered(row, outcome)
        return outcome

    async def _deliver(self, row: OutboxRow, claimed: bool) -> DeliveryOutcome:
        started = time.perf_counter()
        now = self.clock.now()

        def ms() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        if row.not_after is not None and now >= row.not_after:
            await self._finish(row, "expired", now, "the reset link expired before it could be delivered")
            return DeliveryOutcome("expired", ms(), "link expired before delivery")
        if row.kind == "password_reset" and (claimed or row.attempts > 1):
            # On a retry (or a re-queued row, whose attempts start again from 0), the
            # token may have been used up or superseded meanwhile.
            async with self.store.transaction() as tx:
                token = await tx.get_token_for_send(row.send_id)
            if token is None or token.revoked_at is not None or token.consumed_at is not None:
                await self._finish(row, "cancelled", now, "the reset link was revoked or used before delivery")
                return DeliveryOutcome("cancelled", ms(), "link no longer valid")
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
            log.error("delivery of %s raised %s", row.id, _where(exc))
            return await self._failed(row, TransientDeliveryError(f"unexpected error: {type(exc).__name__}"), ms)
        await self._finish(row, "sent", self.clock.now(), None, receipt.provider_message_id)
        return DeliveryOutcome("sent", ms())

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
            await self._finish(row, "failed", now, final)
            return DeliveryOutcome("failed", ms(), final)
        delay = self.retry.delay(row.attempts, exc.retry_after)
        log.info("delivery of %s failed (attempt %d), retrying in %.0fs: %s", row.id, row.attempts, delay, reason)
        await self._finish(row, "pending", now, reason, next_attempt_at=now + timedelta(seconds=delay))
        self.wake()
        return DeliveryOutcome("pending", ms(), reason)

    async def _finish(
        self,
        row: OutboxRow,
        status: str,
        now: datetime,
        error: str | None,
        provider_message_id: str | None = None,
        next_attempt_at: datetime | None = None,
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
                await record_outcome(tx, row, status, error, now)
        if not done:
            log.warning("outbox row %s was taken over by another worker; its outcome stands", row.id)

    # The worker ------------------------------------------------------------------------
    async def run_once(self, limit: int = 50) -> int:
        if self.on_expire_approvals is not None:
            await self.on_expire_approvals()
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
            log.error("outbox row %s: outcome not recorded (%s); retried when its lease ends", row.id, _where(exc))

    async def run_forever(self, poll_seconds: float = 1.0) -> None:
        """Retry due rows and resume what a crash left; runs until cancelled or `stop()`."""
        while not self._stopping:
            try:
                claimed = await self.run_once()
            except ResetMCPError as exc:
                log.error("outbox worker: %s", exc)
                claimed = 0
            except Exception as exc:  # the worker outlives any one bad poll
                log.error("outbox worker: %s", _where(exc))
                claimed = 0
            if claimed:
                continue
            self._wake = anyio.Event()
            if self._stopping:
                break
            with anyio.move_on_after(poll_seconds):
                await self._wake.wait()

    async def wait_idle(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a bounded drain at shutdown
        """Let in-flight deliveries finish (graceful shutdown)."""
        with anyio.move_on_after(timeout):
            await self._idle.wait()
