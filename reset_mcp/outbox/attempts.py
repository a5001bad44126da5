"""One delivery attempt on one outbox row: take a slot, check, send, record the outcome.

`Deliverer.attempt` is what both of the dispatcher's paths run. The attempt waits for a
slot (one of the backend's connections) only as long as it was given, then gives the row
back to the worker; it checks that the row may still go (link expired, revoked or used);
it sends inside its lease's cancel scope (`leases.py`), so a send that outlives the
lease is cut and retried as "may have arrived"; and it records the outcome only as the
attempt holding the row, trying again while the store fails and the lease lasts.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio

from reset_mcp.canonical import Canon
from reset_mcp.clock import Clock
from reset_mcp.emails.outgoing import MessageFactory
from reset_mcp.errors import (
    DeliveryError,
    MaybeDeliveredError,
    PermanentDeliveryError,
    ResetMCPError,
    StoreError,
    TransientDeliveryError,
)
from reset_mcp.logs import where
from reset_mcp.mail import EmailBackend
from reset_mcp.mail.base import DeliveryReceipt
from reset_mcp.outbox.leases import Attempt, LeaseKeeper
from reset_mcp.outbox.outcomes import record_outcome
from reset_mcp.store import Store
from reset_mcp.store.records import OutboxRow
from reset_mcp.token_rows import outbox_refusal
from reset_mcp.vocab import OutboxStatus

log = logging.getLogger("reset_mcp.outbox.dispatcher")
RECORD_PAUSES = (0.1, 0.25, 0.5, 1.0)  # between tries to record an outcome while the store fails; then 2 s


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
    # sent | pending (will retry) | failed | expired | cancelled, as recorded; or
    # sending: still in flight when the caller stopped waiting (the worker finishes it)
    status: OutboxStatus
    elapsed_ms: float
    error: str | None = None
    recorded: bool = True  # False: no outcome of this attempt was written (given back, taken over)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A row that must not be sent now: the status and error it ends with, the answer."""

    status: OutboxStatus
    error: str
    said: str
    integrity: str | None = None  # its token row failed its integrity check: why (audited)


class Deliverer:
    def __init__(
        self,
        store: Store,
        backend: EmailBackend,
        messages: MessageFactory,
        clock: Clock,
        retry: RetryPolicy,
        leases: LeaseKeeper,
        slots: anyio.Semaphore,
        wake: Callable[[], None],
        canon: Canon,
    ) -> None:
        """`canon`: the keys a delivery's contact event is counted under."""
        self.store = store
        self.backend = backend
        self.messages = messages
        self.clock = clock
        self.retry = retry
        self.leases = leases
        self._slots = slots
        self.wake = wake
        self.canon = canon

    async def attempt(
        self, row: OutboxRow, *, claimed: bool, slot_wait: float | None, leased_at: float | None = None
    ) -> DeliveryOutcome:
        """`slot_wait` None: the caller took a slot for this row. `claimed`: the row came
        from a claim (a retry, a resumed or a re-queued row): its token is re-checked."""
        started = time.perf_counter()

        def ms() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        if leased_at is None:  # written by a flow: its lease began at the flow's `now`
            lease = self.leases.lease_seconds
            left = (row.lease_until - self.clock.now()).total_seconds() if row.lease_until else lease
            leased_at = anyio.current_time() - (lease - left)
        attempt = self.leases.hold(row, row.lease_owner or "", leased_at=leased_at)
        has_slot, sending = slot_wait is None, False
        verdict: Verdict | DeliveryError | None = None
        receipt: DeliveryReceipt | None = None
        try:
            try:
                with attempt.scope:
                    if not has_slot:
                        has_slot = await self._take_slot(slot_wait or 0.0)
                    if has_slot:
                        verdict = await self._verdict(row, claimed)
                        if verdict is None:
                            sending = True
                            receipt, verdict = await self._send(row)
            except anyio.get_cancelled_exc_class():
                if not sending:  # stopped (shutdown) before anything went out: the worker has it
                    with anyio.CancelScope(shield=True):
                        await self._give_back(attempt, "stopped before it was sent")
                raise
            finally:
                attempt.in_flight = False
                if has_slot:
                    self._slots.release()
            if attempt.lost:
                return DeliveryOutcome(OutboxStatus.SENDING, ms(), "another attempt holds the row now", False)
            if not sending and (not has_slot or attempt.cut):
                why = (
                    f"no free email connection within {slot_wait:g}s; the worker delivers it"
                    if not has_slot
                    else "its lease ran out before it was sent; the worker delivers it"
                )
                await self._give_back(attempt, why)
                return DeliveryOutcome(OutboxStatus.PENDING, ms(), why, False)
            elif receipt is None and verdict is None:  # cut at its lease's end, mid-send
                verdict = MaybeDeliveredError("the send did not finish before its lease ran out; it may have arrived")
            if isinstance(verdict, DeliveryError):
                return await self._failed(attempt, verdict, ms)
            if verdict is not None:
                await self._finish(
                    attempt, verdict.status, self.clock.now(), verdict.error, integrity=verdict.integrity
                )
                return DeliveryOutcome(verdict.status, ms(), verdict.said)
            assert receipt is not None
            await self._finish(attempt, OutboxStatus.SENT, self.clock.now(), None, receipt.provider_message_id)
            return DeliveryOutcome(OutboxStatus.SENT, ms())
        finally:
            self.leases.drop(attempt)

    async def _take_slot(self, wait: float) -> bool:
        try:
            self._slots.acquire_nowait()
            return True
        except anyio.WouldBlock:
            pass
        with anyio.move_on_after(wait):
            await self._slots.acquire()
            return True
        return False

    async def _verdict(self, row: OutboxRow, claimed: bool) -> Verdict | DeliveryError | None:
        """Why this row must not be sent now, or None."""
        now = self.clock.now()
        if row.not_after is not None and now >= row.not_after:
            reason = "the reset link expired before it could be delivered"
            return Verdict(OutboxStatus.EXPIRED, reason, "link expired before delivery")
        kind = self.messages.kinds.get(row.kind)
        if kind is None:  # written by a build that knew a kind this one does not
            return PermanentDeliveryError(f"unknown email kind {row.kind!r}")
        if kind.carries_token and (claimed or row.attempts > 1):
            # On a retry (or a re-queued row, whose attempts start again from 0), the
            # token may have been used up or superseded meanwhile.
            async with self.store.reading() as tx:
                token = await tx.get_token_for_send(row.send_id)
            # A row planted or edited by a database writer (no secret) would have a valid
            # link minted and mailed where it says: refused, and visibly (`failed`, audited).
            if (why := outbox_refusal(self.messages.signer, row, token)) is not None:
                error = "refused: token row failed its integrity check"
                log.warning("outbox row %s: %s (%s)", row.id, error, why)
                return Verdict(OutboxStatus.FAILED, error, error, integrity=why)
            if token is None or token.revoked_at is not None or token.consumed_at is not None:
                reason = "the reset link was revoked or used before delivery"
                return Verdict(OutboxStatus.CANCELLED, reason, "link no longer valid")
        return None

    async def _send(self, row: OutboxRow) -> tuple[DeliveryReceipt | None, DeliveryError | None]:
        try:
            email = self.messages.build(row, self.clock.now())
            return await self.backend.send(email), None
        except DeliveryError as exc:
            return None, exc
        except ResetMCPError as exc:  # e.g. a header refused by mime.build_message
            return None, PermanentDeliveryError(str(exc))
        except Exception as exc:
            # A backend breaking its contract (or a rendering bug) must not strand the row
            # in `sending` nor kill the worker: retry it, and it ends `failed` visibly.
            log.error("delivery of %s raised %s", row.id, where(exc))
            return None, TransientDeliveryError(f"unexpected error: {type(exc).__name__}")

    async def _failed(self, attempt: Attempt, exc: DeliveryError, ms: Callable[[], float]) -> DeliveryOutcome:
        row, now = attempt.row, self.clock.now()
        reason = exc.reason[:500]
        if isinstance(exc, PermanentDeliveryError) or row.attempts >= self.retry.max_attempts:
            final = (
                reason
                if isinstance(exc, PermanentDeliveryError)
                else f"gave up after {row.attempts} attempts: {reason}"
            )
            log.warning("delivery of %s failed for good: %s", row.id, final)
            await self._finish(attempt, OutboxStatus.FAILED, now, final)
            return DeliveryOutcome(OutboxStatus.FAILED, ms(), final)
        delay = self.retry.delay(row.attempts, exc.retry_after)
        log.info("delivery of %s failed (attempt %d), retrying in %.0fs: %s", row.id, row.attempts, delay, reason)
        await self._finish(attempt, OutboxStatus.PENDING, now, reason, next_attempt_at=now + timedelta(seconds=delay))
        self.wake()
        return DeliveryOutcome(OutboxStatus.PENDING, ms(), reason)

    async def _finish(
        self,
        attempt: Attempt,
        status: OutboxStatus,
        now: datetime,
        error: str | None,
        provider_message_id: str | None = None,
        next_attempt_at: datetime | None = None,
        integrity: str | None = None,
    ) -> None:
        row = attempt.row

        async def write() -> bool:
            async with self.store.transaction() as tx:
                done = await tx.finish_outbox(
                    row.id,
                    attempt.owner,
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
            return done

        if not await self._persist(attempt, write, f"outcome ({status})"):
            log.warning("outbox row %s was taken over by another attempt; its outcome stands", row.id)

    async def _give_back(self, attempt: Attempt, why: str) -> None:
        async def write() -> bool:
            async with self.store.transaction() as tx:
                return await tx.release_outbox(attempt.row.id, attempt.owner, self.clock.now())

        log.info("outbox row %s given back to the worker: %s", attempt.row.id, why)
        if await self._persist(attempt, write, "give-back"):
            self.wake()

    async def _persist(self, attempt: Attempt, write: Callable[[], Awaitable[bool]], what: str) -> bool:
        """Run `write` until the store takes it, while the attempt's lease lasts: an outcome
        lost to a busy moment would send the email again once the lease ran out."""
        pauses = iter(RECORD_PAUSES)
        while True:
            try:
                return await write()
            except StoreError as exc:
                pause = next(pauses, 2.0)
                if anyio.current_time() + pause >= attempt.scope.deadline + self.leases.margin / 2:
                    raise
                log.warning("outbox row %s: %s not recorded yet (%s); trying again", attempt.row.id, what, exc)
                await anyio.sleep(pause)
