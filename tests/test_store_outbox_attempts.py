"""The outbox contract for "at most one attempt in flight" (issue 21 items 1 and 8).

- Each claim is one attempt with its own id: an attempt that was taken over, even by
  another attempt of the same process, can no longer finish, renew or give back the row.
- An attempt waiting for a connection renews its lease, or gives the row back as
  `pending` with the attempt not counted.
- On PostgreSQL, leases and due times follow the database's clock: a caller whose clock
  is minutes off neither takes over a live lease nor retries early. SQLite (one host)
  compares the callers' times as given.

Times here are real (`datetime.now`), so the same tests hold on either clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pg import fresh_schema_url, pg_database_fixture

from reset_mcp.store import Store, open_store
from reset_mcp.store.records import OutboxRow

pg_url = pg_database_fixture()
SKEW = timedelta(minutes=10)
LEASE = timedelta(seconds=0.4)


@pytest.fixture(
    params=[
        pytest.param(("sqlite", "caller"), id="sqlite"),
        pytest.param(("postgres", "caller"), id="postgres-caller-clock", marks=pytest.mark.postgres),
        pytest.param(("postgres", "database"), id="postgres-db-clock", marks=pytest.mark.postgres),
    ]
)
async def store(request: pytest.FixtureRequest, tmp_path):
    kind, clock = request.param
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = fresh_schema_url(request.getfixturevalue("pg_url"))
    s = await open_store(url, pool_size=4, clock=clock)
    yield s
    await s.aclose()


@pytest.fixture
async def pg_store(pg_url: str):
    s = await open_store(fresh_schema_url(pg_url), pool_size=4)  # the default: the database's clock
    yield s
    await s.aclose()


def now() -> datetime:
    return datetime.now(UTC)


def row(i: int, at: datetime, **over: object) -> OutboxRow:
    base = OutboxRow(
        id=f"msg_{i}", send_id=f"req_{i}", kind="security_alert", recipient="a@example.com",
        message_id=f"<msg_{i}@example.com>", status="pending", created_at=at, next_attempt_at=at, payload={},
    )  # fmt: skip
    for key, value in over.items():
        setattr(base, key, value)
    return base


async def claim(store: Store, attempt: str, at: datetime | None = None, lease: timedelta = LEASE) -> list[OutboxRow]:
    at = at or now()
    async with store.transaction() as tx:
        return await tx.claim_due_outbox(attempt, at, at + lease, 10)


async def test_an_attempt_taken_over_can_no_longer_finish_renew_or_give_back(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_outbox(row(1, now()))
    assert [r.lease_owner for r in await claim(store, "att_1")] == ["att_1"]
    assert await claim(store, "att_2") == []  # leased
    await asyncio.sleep(LEASE.total_seconds() + 0.1)
    [taken] = await claim(store, "att_2")  # the lease ran out: a new attempt, the same worker or not
    assert (taken.lease_owner, taken.attempts) == ("att_2", 2)
    async with store.transaction() as tx:
        t = now()
        assert not await tx.finish_outbox("msg_1", "att_1", status="sent", now=t)
        assert not await tx.renew_outbox("msg_1", "att_1", t, t + LEASE)
        assert not await tx.release_outbox("msg_1", "att_1", t)
        assert await tx.renew_outbox("msg_1", "att_2", t, t + LEASE)
        assert await tx.finish_outbox("msg_1", "att_2", status="sent", now=t, provider_message_id="p-2")
        done = await tx.get_outbox("msg_1")
    assert (done.status, done.provider_message_id, done.lease_owner) == ("sent", "p-2", None)


async def test_renewing_keeps_a_waiting_attempts_row_from_being_taken_over(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_outbox(row(1, now()))
    await claim(store, "att_1")
    for _ in range(3):  # waits past its first lease, renewing every 0.2 s
        await asyncio.sleep(0.2)
        async with store.transaction() as tx:
            t = now()
            assert await tx.renew_outbox("msg_1", "att_1", t, t + LEASE)
        assert await claim(store, "att_2") == []
    await asyncio.sleep(LEASE.total_seconds() + 0.1)  # no more renewals: taken over
    assert [r.lease_owner for r in await claim(store, "att_2")] == ["att_2"]


async def test_giving_a_row_back_leaves_it_pending_with_the_attempt_uncounted(store: Store) -> None:
    t = now()
    async with store.transaction() as tx:  # written leased, as the fast path writes it
        await tx.insert_outbox(row(1, t, status="sending", attempts=1, lease_owner="att_1", lease_until=t + LEASE))
        await tx.insert_outbox(row(2, t, status="sending", attempts=3, lease_owner="att_9", lease_until=t + LEASE))
    async with store.transaction() as tx:
        t = now()
        assert await tx.release_outbox("msg_1", "att_1", t, error="no SMTP connection within 3s")
        assert not await tx.release_outbox("msg_1", "att_1", t)  # given back already
        assert await tx.release_outbox("msg_2", "att_9", t, next_attempt_at=t + timedelta(minutes=5))
        back = await tx.get_outbox("msg_1")
    assert (back.status, back.attempts, back.lease_owner, back.lease_until) == ("pending", 0, None, None)
    assert back.last_error == "no SMTP connection within 3s"
    [again] = await claim(store, "att_2")  # due at once; msg_2 only in five minutes
    assert (again.id, again.attempts, again.lease_owner) == ("msg_1", 1, "att_2")


@pytest.mark.postgres
async def test_postgres_leases_follow_the_databases_clock_not_a_callers(pg_store: Store) -> None:
    ahead, behind = now() + SKEW, now() - SKEW
    async with pg_store.transaction() as tx:
        await tx.insert_outbox(row(1, behind))  # written by an instance whose clock is slow
    [mine] = await claim(pg_store, "att_1", behind, lease=timedelta(seconds=60))
    # The lease is 60 s from the database's now, whatever the writer's clock said.
    assert abs((mine.lease_until - (now() + timedelta(seconds=60))).total_seconds()) < 5
    # An instance whose clock is ten minutes fast does not see the live lease as expired.
    assert await claim(pg_store, "att_2", ahead) == []
    # A retry in 30 s scheduled by the slow instance is due in 30 s for everyone (by its own
    # clock it would be due ten minutes ago); requeued now is due at once.
    async with pg_store.transaction() as tx:
        assert await tx.finish_outbox(
            "msg_1", "att_1", status="pending", now=behind, error="451", next_attempt_at=behind + timedelta(seconds=30)
        )
    assert await claim(pg_store, "att_3") == []
    assert await claim(pg_store, "att_3", ahead) == []
    async with pg_store.transaction() as tx:
        await tx.insert_outbox(row(2, ahead, status="failed"))
        assert await tx.requeue_outbox("msg_2", behind)
    assert [r.id for r in await claim(pg_store, "att_4", ahead)] == ["msg_2"]


async def test_sqlite_compares_the_callers_times_as_given(tmp_path) -> None:
    # One host, one clock: documented, not a guard against a clock stepping.
    store = await open_store(f"sqlite:///{tmp_path / 's.db'}")
    async with store.transaction() as tx:
        await tx.insert_outbox(row(1, now()))
    await claim(store, "att_1", lease=timedelta(seconds=60))
    assert [r.lease_owner for r in await claim(store, "att_2", now() + SKEW)] == ["att_2"]
    await store.aclose()
