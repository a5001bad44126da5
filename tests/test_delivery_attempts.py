"""One delivery attempt in flight per outbox row (issue 21, item 1), in process.

A backend with a small pool of connections (like SMTP's 4) and a slow answer: rows
waiting for a connection keep their lease (renewed) or are given back `pending`; a send
that outlives its lease is renewed while the store answers and cut when it does not; an
outcome survives a busy moment of the store; every attempt has its own lease owner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock, SystemClock
from reset_mcp.compose import RequestContext
from reset_mcp.config import Settings
from reset_mcp.emails.kind import dump_context
from reset_mcp.errors import StoreBusyError, TransientDeliveryError
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail import DeliveryReceipt, OutgoingEmail
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.mail.smtp import SmtpBackend
from reset_mcp.models import ResetRequestResult
from reset_mcp.outbox.dispatcher import Dispatcher
from reset_mcp.store import Store
from reset_mcp.store.records import OutboxRow, SendRecord
from tests.conftest import reset_args
from tests.smtpd_sink import HOST, SmtpSink
from tests.test_smtp import make_email


class PooledBackend(MemoryBackend):
    """A backend with `max_concurrency` connections, each send taking `delay` seconds;
    records every attempt, finished or not (what a real server would have received)."""

    def __init__(self, max_concurrency: int, delay: float) -> None:
        super().__init__()
        self.max_concurrency = max_concurrency
        self.delay = delay
        self.attempts: list[OutgoingEmail] = []
        self._pool = anyio.Semaphore(max_concurrency)
        self.before_answer: Callable[[], None] | None = None

    async def send(self, email: OutgoingEmail) -> DeliveryReceipt:
        async with self._pool:  # as SmtpBackend: a send waits here for a free connection
            self.attempts.append(email)
            await anyio.sleep(self.delay)
            if self.before_answer is not None:
                self.before_answer()
            return await super().send(email)


@asynccontextmanager
async def app_on(settings: Settings, backend: MemoryBackend, clock: Any = None) -> AsyncIterator[App]:
    async with build_app(settings, clock=clock or SystemClock(), backend=backend) as app:
        yield app


async def request(app: App, i: int) -> ResetRequestResult:
    return await app.service.request_password_reset(
        ResetInput(**reset_args(email=f"u{i}@example.com", user_id=f"u{i}"))
    )


async def rows(app: App) -> list[OutboxRow]:
    async with app.store.reading() as tx:
        return await tx.list_outbox(None, 1000)


async def row_of(app: App, recipient: str) -> OutboxRow:
    [row] = [r for r in await rows(app) if r.recipient == recipient]
    return row


def other_process(app: App, backend: MemoryBackend, *, lease: float) -> Dispatcher:
    """A second worker on the same database (another instance's dispatcher)."""
    return Dispatcher(app.store, backend, app.messages, app.clock, lease_seconds=lease)


async def test_rows_waiting_for_a_connection_are_never_sent_twice(settings_factory: Callable[..., Settings]) -> None:
    # The trial, scaled: a lease much shorter than the queue's wait for a connection.
    backend = PooledBackend(max_concurrency=1, delay=0.15)
    settings = settings_factory(delivery_lease_seconds=0.6, send_wait_seconds=30)
    async with app_on(settings, backend) as app:
        other = other_process(app, backend, lease=0.6)
        done = anyio.Event()

        async def poll() -> None:
            while not done.is_set():
                await other.run_once(wait=0.05)
                await anyio.sleep(0.05)

        async with anyio.create_task_group() as tg:
            tg.start_soon(poll)
            async with anyio.create_task_group() as calls:
                for i in range(8):
                    calls.start_soon(request, app, i)
            done.set()
        stored = await rows(app)
    ids = [m.message_id for m in backend.attempts]
    assert len(ids) == len(set(ids)) == 8, f"{len(ids) - len(set(ids))} sent twice"
    assert {r.status for r in stored} == {"sent"} and {r.attempts for r in stored} == {1}


async def test_a_row_without_a_connection_by_the_send_wait_is_given_back_pending(
    settings_factory: Callable[..., Settings],
) -> None:
    backend = PooledBackend(max_concurrency=1, delay=1.0)
    settings = settings_factory(send_wait_seconds=0.2)
    async with app_on(settings, backend) as app:
        results: dict[int, ResetRequestResult] = {}

        async def call(i: int) -> None:
            results[i] = await request(app, i)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, 0)
            await anyio.sleep(0.05)  # the first holds the only connection
            started = anyio.current_time()
            await call(1)
            waited = anyio.current_time() - started
            with anyio.fail_after(2):  # given back in the background, as the call answers
                while (row := await row_of(app, "u1@example.com")).status != "pending":
                    await anyio.sleep(0.01)
        assert results[1].status == "queued" and waited < 0.2 + 0.3
        assert results[1].delivery is not None and results[1].delivery.status in ("pending", "sending")
        assert (row.status, row.attempts, row.lease_owner, row.lease_until) == ("pending", 0, None, None)
        assert [m.to for m in backend.attempts] == ["u0@example.com"]  # never handed to the backend
        assert await app.dispatcher.run_once() == 1  # the worker takes it once a connection is free
        row = await row_of(app, "u1@example.com")
    assert (row.status, row.attempts) == ("sent", 1)


async def test_a_send_longer_than_the_lease_keeps_it_and_is_not_taken_over(
    settings_factory: Callable[..., Settings],
) -> None:
    backend = PooledBackend(max_concurrency=1, delay=1.5)
    settings = settings_factory(delivery_lease_seconds=0.6, send_wait_seconds=0.1)
    async with app_on(settings, backend) as app:
        other = other_process(app, backend, lease=0.6)
        answer = await request(app, 0)
        assert answer.status == "queued" and answer.delivery is not None and answer.delivery.status == "sending"
        claimed = 0
        with anyio.fail_after(5):
            while (await rows(app))[0].status == "sending":
                claimed += await other.run_once(wait=0.05)
                await anyio.sleep(0.05)
        [row] = await rows(app)
    assert claimed == 0 and len(backend.attempts) == 1
    assert (row.status, row.attempts) == ("sent", 1)


async def test_a_send_that_outlives_its_lease_unrenewed_is_cut_and_retried_later(
    settings_factory: Callable[..., Settings],
) -> None:
    # No lease keeper runs for this dispatcher (as if every renewal failed): the send is
    # stopped before the lease ends, and the row waits out the backoff as "may have arrived".
    backend = PooledBackend(max_concurrency=1, delay=3.0)
    settings = settings_factory(delivery_backoff_seconds=60)
    clock = SystemClock()
    async with app_on(settings, MemoryBackend(), clock) as app:
        await fail_first_delivery(app)
        lone = Dispatcher(app.store, backend, app.messages, clock, lease_seconds=0.6)
        started = anyio.current_time()
        assert await lone.run_once() == 1
        took = anyio.current_time() - started
        [row] = await rows(app)
    assert took < 1.5 and backend.sent == []
    assert row.status == "pending" and "may have arrived" in (row.last_error or "")
    assert row.next_attempt_at is not None and row.lease_owner is None


async def fail_first_delivery(app: App) -> None:
    """A row left `pending` and due now (its first attempt failed)."""
    memory = app.backend
    assert isinstance(memory, MemoryBackend)
    memory.fail_next = [TransientDeliveryError("SMTP 451 try later")]
    await request(app, 0)
    # The retry's due time is in the future; bring it forward as the CLI's `outbox retry` would.
    async with app.store.transaction() as tx:
        [row] = await tx.list_outbox(None, 10)
        assert row.status == "pending"
        assert await tx.requeue_outbox(row.id, app.clock.now())


class FlakyStore:
    """The App's store, whose next `fail` transactions raise StoreBusyError."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.fail = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        if self.fail:
            self.fail -= 1
            raise StoreBusyError("the database is busy: another process held its write lock 5s")
        async with self._store.transaction() as tx:
            yield tx


async def test_an_outcome_is_recorded_through_a_busy_moment_of_the_store(
    settings_factory: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 21 item 4's "one email left while its result could not be saved, then went again".
    clock = FakeClock()
    async with app_on(settings_factory(), MemoryBackend(), clock) as app:
        await fail_first_delivery(app)
        flaky = FlakyStore(app.store)
        backend = PooledBackend(max_concurrency=1, delay=0)
        backend.before_answer = lambda: setattr(flaky, "fail", 2)  # the outcome's first two tries fail
        worker = Dispatcher(flaky, backend, app.messages, clock)  # type: ignore[arg-type]
        assert await worker.run_once() == 1
        [row] = await rows(app)
    assert (row.status, len(backend.sent)) == ("sent", 1)
    assert "not recorded yet" in caplog.text


async def test_each_attempt_has_its_own_lease_owner(app: App, clock: FakeClock) -> None:
    # The fast path's rows used to be leased to one id per process, shared with its worker,
    # so the owner check could not tell two attempts of one process apart.
    now = clock.now()
    async with app.store.transaction() as tx:
        for i in range(2):
            payload = {"context": dump_context(RequestContext(now, "203.0.113.9", "Firefox", "unknown"))}
            send = SendRecord.new("password_reset", f"u{i}@example.com", f"u{i}", "test", payload, now)
            await tx.insert_send(send)
            await app.service.deps.releaser.release(tx, send, now)
    first, second = await rows(app)
    assert first.lease_owner and second.lease_owner and first.lease_owner != second.lease_owner
    assert first.lease_owner.startswith("att_") and second.lease_owner.startswith("att_")
    async with app.store.transaction() as tx:  # one attempt cannot record another's outcome
        assert not await tx.finish_outbox(first.id, second.lease_owner, status="sent", now=now)
    clock.advance(seconds=app.dispatcher.lease_seconds + 1)  # as if this process had died
    assert await app.dispatcher.run_once() == 2
    async with app.store.transaction() as tx:  # the dead attempts cannot either
        assert not await tx.finish_outbox(first.id, first.lease_owner, status="failed", now=clock.now())
    assert [r.status for r in await rows(app)] == ["sent", "sent"]
    assert len(app.backend.sent) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
async def test_a_send_cut_mid_message_closes_its_smtp_connection(pipelining: bool) -> None:
    # A cut send's link is in an unknown state: it is closed, never put back in the pool.
    with SmtpSink(pipelining=pipelining) as sink:
        sink.data_delay = 2.0
        backend = SmtpBackend(HOST, sink.port, tls="none")
        opened: list[Any] = []
        connect = backend._connect

        async def spy() -> Any:
            opened.append(await connect())
            return opened[-1]

        backend._connect = spy  # type: ignore[method-assign]
        with anyio.move_on_after(0.5) as scope:
            await backend.send(make_email())
        assert scope.cancelled_caught
        [conn] = opened
        assert not conn.usable and backend._idle == []
        await backend.aclose()
