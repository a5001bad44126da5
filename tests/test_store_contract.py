"""The Store contract, one suite, run on SQLite and on PostgreSQL.

Each test gets an empty store: a new SQLite file, or a new schema in this run's
PostgreSQL database (selected through the URL's `options=-csearch_path=...`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pg import fresh_schema_url, pg_database_fixture

from reset_mcp.audit import verify_chain
from reset_mcp.errors import StoreError, StoreUnavailableError
from reset_mcp.store import Store, open_store
from reset_mcp.store.postgres import PostgresStore, rowcount, to_pg, url_for_display
from reset_mcp.store.records import (
    ApiKeyRecord,
    ApprovalRecord,
    ContactEvent,
    ContactFacts,
    OutboxRow,
    SendRecord,
    TokenRecord,
)
from reset_mcp.store.schema import MIGRATIONS

NOW = datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
pg_url = pg_database_fixture()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return fresh_schema_url(request.getfixturevalue("pg_url"))


@pytest.fixture
async def store(store_url: str):
    # At the fixed times these tests pass (NOW): PostgreSQL otherwise keeps outbox leases and
    # due times by its own clock, which tests/test_store_outbox_attempts.py checks.
    s = await open_store(store_url, pool_size=12, pool_timeout=5.0, clock="caller")
    yield s
    await s.aclose()


def is_pg(store: Store) -> bool:
    return isinstance(store, PostgresStore)


def send(i: int | str, *, status: str = "queued", at: datetime = NOW, user: str = "u1") -> SendRecord:
    return SendRecord(
        id=f"req_{i}", kind="password_reset", recipient="a@example.com", user_id=user, status=status,
        reason=None, requested_by="agent", decision="send", created_at=at, updated_at=at,
        payload={"context": {"ip": "203.0.113.9"}, "n": i},
    )  # fmt: skip


def token(i: int | str, *, user: str = "u1", email: str = "a@example.com", ttl: timedelta = 15 * MIN) -> TokenRecord:
    return TokenRecord(f"hash_{i}", f"req_{i}", user, email, "k1", NOW, NOW + ttl)


def outbox(i: int | str, *, status: str = "pending", due: datetime = NOW, kind: str = "security_alert") -> OutboxRow:
    return OutboxRow(
        id=f"msg_{i}", send_id=f"req_{i}", kind=kind, recipient="a@example.com",
        message_id=f"<msg_{i}@example.com>", status=status, created_at=NOW, next_attempt_at=due,
        payload={"reason": "x", "details": None, "attempts": [], "locale": None, "timezone": None},
    )  # fmt: skip


def approval(i: int | str, *, expires: datetime = NOW + 30 * MIN) -> ApprovalRecord:
    return ApprovalRecord(
        id=f"apr_{i}", send_id=f"req_{i}", kind="password_reset", recipient="a@example.com",
        summary="Password reset email", requested_by="agent", reason="gated", status="pending",
        created_at=NOW, expires_at=expires,
    )  # fmt: skip


def event(kind: str, at: datetime, *, email: str = "a@example.com", ip: str | None = "203.0.113.9", user=None):
    return ContactEvent(email=email, event_type=kind, created_at=at, user_id=user, ip=ip, metadata={"k": kind})


# Sends, tokens -------------------------------------------------------------------------
async def test_sends_round_trip_update_and_list(store: Store) -> None:
    async with store.transaction() as tx:
        for i in range(3):
            await tx.insert_send(send(i, at=NOW + i * MIN, status="queued" if i else "blocked"))
    async with store.transaction() as tx:
        assert await tx.get_send("req_1") == send(1, at=NOW + MIN)
        assert await tx.get_send("nope") is None
        await tx.update_send("req_1", "sent", "ok", NOW + 5 * MIN)
        got = await tx.get_send("req_1")
        assert (got.status, got.reason, got.updated_at) == ("sent", "ok", NOW + 5 * MIN)
        assert [s.id for s in await tx.list_sends(None, 10)] == ["req_2", "req_1", "req_0"]
        assert [s.id for s in await tx.list_sends("queued", 10)] == ["req_2"]
        assert len(await tx.list_sends(None, 2)) == 2


async def test_transaction_rolls_back_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.insert_send(send(1))
            await tx.insert_token(token(1))
            raise RuntimeError("boom")
    async with store.transaction() as tx:
        assert await tx.get_send("req_1") is None
        assert await tx.get_token("hash_1") is None


async def test_concurrent_transactions_are_each_atomic_and_durable_on_exit(store: Store) -> None:
    # SQLite commits concurrent transactions in groups, PostgreSQL on separate
    # connections: either way each one stands alone. A failing one (odd i, after its
    # first insert) leaves nothing; every other is committed when its block exits.
    failed: list[int] = []

    async def one(i: int) -> None:
        try:
            async with store.transaction() as tx:
                await tx.insert_send(send(i))
                await tx.insert_token(token(i))
                if i % 2:
                    raise RuntimeError(f"body {i}")
        except RuntimeError:
            failed.append(i)
            return
        async with store.transaction() as tx:  # visible to the next transaction at once
            assert await tx.get_token(f"hash_{i}") is not None

    async with asyncio.timeout(20):
        await asyncio.gather(*(one(i) for i in range(16)))
    assert sorted(failed) == list(range(1, 16, 2))
    async with store.transaction() as tx:
        for i in range(16):
            assert (await tx.get_send(f"req_{i}") is None) == bool(i % 2)
            assert (await tx.get_token(f"hash_{i}") is None) == bool(i % 2)


async def test_reading_sees_what_is_committed_and_refuses_writes(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_send(send(1))
    async with store.reading() as tx:
        assert (await tx.get_send("req_1")) is not None
        assert await tx.get_send("req_2") is None
    with pytest.raises(StoreError):
        async with store.reading() as tx:
            await tx.insert_send(send(2))
    async with store.transaction() as tx:  # nothing was written, and the store still works
        assert await tx.get_send("req_2") is None
        await tx.insert_send(send(3))
    async with store.reading() as tx:
        assert (await tx.get_send("req_3")) is not None


async def test_driver_errors_are_wrapped(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_send(send(1))
    with pytest.raises(StoreError) as info:
        async with store.transaction() as tx:
            await tx.insert_send(send(1))  # duplicate primary key
    assert info.value.__cause__ is not None
    assert "req_1" not in str(info.value)  # row values stay out of the message an agent may see
    async with store.transaction() as tx:  # the store is still usable
        assert (await tx.get_send("req_1")) is not None


async def test_tokens_consume_once_and_not_when_revoked_or_expired(store: Store) -> None:
    async with store.transaction() as tx:
        for i in range(3):
            await tx.insert_token(token(i))
    async with store.transaction() as tx:
        assert await tx.get_token("hash_0") == token(0)
        assert (await tx.get_token_for_send("req_1")).jti_hash == "hash_1"
        assert await tx.consume_token("hash_0", NOW + MIN)
        assert not await tx.consume_token("hash_0", NOW + MIN)
        assert (await tx.get_token("hash_0")).consumed_at == NOW + MIN
        assert await tx.revoke_token("hash_1", NOW, "reported")
        assert not await tx.revoke_token("hash_1", NOW, "again")
        assert not await tx.consume_token("hash_1", NOW + MIN)
        assert not await tx.consume_token("hash_2", NOW + 15 * MIN)  # expires_at > now fails
        assert not await tx.consume_token("missing", NOW)
        assert (await tx.get_token("hash_1")).revoke_reason == "reported"


async def test_revoke_tokens_by_user_email_and_keep(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_token(token(1, user="u1", email="a@example.com"))
        await tx.insert_token(token(2, user="u1", email="a@example.com"))
        await tx.insert_token(token(3, user="u2", email="b@example.com"))
        await tx.insert_token(token(4, user="u3", email="a@example.com"))
        await tx.insert_token(token(5, user="u1", ttl=-MIN))  # already expired: left alone
    async with store.transaction() as tx:
        assert await tx.revoke_tokens(user_id=None, email=None, now=NOW, reason="x") == 0
        assert await tx.revoke_tokens(user_id="u1", email=None, now=NOW, reason="new link", keep="hash_2") == 1
        assert (await tx.get_token("hash_1")).revoked_at == NOW
        assert (await tx.get_token("hash_2")).revoked_at is None
        assert (await tx.get_token("hash_5")).revoked_at is None
        # user OR email: u1's hash_2 and a@example.com's hash_4.
        assert await tx.revoke_tokens(user_id="u1", email="a@example.com", now=NOW, reason="changed") == 2
        assert (await tx.get_token("hash_3")).revoked_at is None
        assert await tx.revoke_tokens(user_id=None, email="b@example.com", now=NOW, reason="r") == 1


async def test_fifty_concurrent_consumes_exactly_one_wins(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_token(token(1))

    async def consume() -> bool:
        async with store.transaction() as tx:
            won = await tx.consume_token("hash_1", NOW + MIN)
            await asyncio.sleep(0)  # hold the transaction open across a switch
            return won

    results = await asyncio.gather(*(consume() for _ in range(50)))
    assert results.count(True) == 1


# Approvals ---------------------------------------------------------------------------
async def test_approvals_decided_once_and_expiries(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_approval(approval(1))
        await tx.insert_approval(approval(2, expires=NOW + MIN))
        await tx.insert_approval(approval(3, expires=NOW + 2 * MIN))
    async with store.transaction() as tx:
        assert await tx.get_approval("apr_1") == approval(1)
        assert (await tx.approval_for_send("req_2")).id == "apr_2"
        assert await tx.get_approval("none") is None
        assert {a.id for a in await tx.list_approvals("pending", 10)} == {"apr_1", "apr_2", "apr_3"}

    async def decide(status: str) -> bool:
        async with store.transaction() as tx:
            return await tx.decide_approval("apr_1", status=status, by="human", reason="ok", now=NOW)

    results = await asyncio.gather(*(decide("approved" if i % 2 else "rejected") for i in range(10)))
    assert results.count(True) == 1
    async with store.transaction() as tx:
        got = await tx.get_approval("apr_1")
        assert got.status in ("approved", "rejected") and got.decided_by == "human" and got.decided_at == NOW
        assert [a.id for a in await tx.list_approvals(got.status, 10)] == ["apr_1"]
        assert [a.id for a in await tx.due_approval_expiries(NOW + 2 * MIN, 10)] == ["apr_2", "apr_3"]
        assert [a.id for a in await tx.due_approval_expiries(NOW + 2 * MIN, 1)] == ["apr_2"]
        assert await tx.due_approval_expiries(NOW, 10) == []


async def test_approvals_page_by_keyset_and_filter_by_requester(store: Store) -> None:
    # Two rows share a created_at: the id orders them, and no page repeats or skips one.
    times = [NOW, NOW + MIN, NOW + MIN, NOW + 2 * MIN, NOW + 3 * MIN]
    async with store.transaction() as tx:
        for i, at in enumerate(times):
            await tx.insert_approval(replace(approval(i), created_at=at, requested_by="agent" if i % 2 else "other"))
    seen: list[str] = []
    after = None
    async with store.transaction() as tx:
        while True:
            page = await tx.list_approvals("pending", 2, after=after)
            seen += [a.id for a in page]
            if len(page) < 2:
                break
            after = (page[-1].created_at, page[-1].id)
        assert seen == ["apr_4", "apr_3", "apr_1", "apr_2", "apr_0"]
        mine = await tx.list_approvals("pending", 10, requested_by="agent")
        assert [a.id for a in mine] == ["apr_3", "apr_1"]
        assert await tx.list_approvals("pending", 10, requested_by="agent", after=(NOW + MIN, "apr_1")) == []


# Outbox --------------------------------------------------------------------------------
async def test_outbox_claim_lease_takeover_and_finish_by_owner(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_outbox(outbox(1))
        await tx.insert_outbox(outbox(2, status="sent"))
    lease = NOW + MIN
    async with store.transaction() as tx:
        assert await tx.get_outbox("msg_1") == outbox(1)
        assert [r.id for r in await tx.outbox_for_send("req_1")] == ["msg_1"]
        claimed = await tx.claim_outbox("msg_1", "w1", NOW, lease)
        assert (claimed.status, claimed.lease_owner, claimed.lease_until, claimed.attempts) == (
            "sending", "w1", lease, 1,
        )  # fmt: skip
        assert await tx.claim_outbox("msg_1", "w2", NOW + 30 * timedelta(seconds=1), lease) is None
        assert await tx.claim_outbox("msg_2", "w2", NOW, lease) is None  # finished rows stay finished
        assert await tx.next_outbox_due() == lease
    async with store.transaction() as tx:  # w1 died: after its lease, w2 takes over
        taken = await tx.claim_outbox("msg_1", "w2", lease + timedelta(seconds=1), lease + 2 * MIN)
        assert (taken.lease_owner, taken.attempts) == ("w2", 2)
        assert not await tx.finish_outbox("msg_1", "w1", status="sent", now=lease, provider_message_id="old")
        assert await tx.finish_outbox("msg_1", "w2", status="sent", now=lease, provider_message_id="p-1")
        assert not await tx.finish_outbox("msg_1", "w2", status="failed", now=lease, error="late")
        done = await tx.get_outbox("msg_1")
        assert (done.status, done.sent_at, done.provider_message_id, done.lease_owner) == ("sent", lease, "p-1", None)
        assert await tx.next_outbox_due() is None


async def test_outbox_retry_requeue_counts_and_lists(store: Store) -> None:
    async with store.transaction() as tx:
        for i in range(3):
            await tx.insert_outbox(outbox(i, due=NOW + i * MIN))
    async with store.transaction() as tx:
        rows = await tx.claim_due_outbox("w1", NOW + MIN, NOW + 2 * MIN, 10)  # msg_2 is not due yet
        assert sorted(r.id for r in rows) == ["msg_0", "msg_1"]
        retry_at = NOW + 10 * MIN
        assert await tx.finish_outbox("msg_0", "w1", status="pending", now=NOW, error="421", next_attempt_at=retry_at)
        assert await tx.finish_outbox("msg_1", "w1", status="failed", now=NOW, error="550 no such user")
        row0 = await tx.get_outbox("msg_0")
        assert (row0.status, row0.next_attempt_at, row0.last_error, row0.attempts) == ("pending", retry_at, "421", 1)
        assert await tx.outbox_counts() == {"pending": 2, "failed": 1}
        assert await tx.next_outbox_due() == NOW + 2 * MIN
        assert [r.id for r in await tx.list_outbox("failed", 10)] == ["msg_1"]
        assert len(await tx.list_outbox(None, 2)) == 2
        assert not await tx.requeue_outbox("msg_missing", NOW)
        assert await tx.requeue_outbox("msg_1", NOW + 3 * MIN)
        row1 = await tx.get_outbox("msg_1")
        assert (row1.status, row1.attempts, row1.last_error, row1.next_attempt_at) == (
            "pending",
            0,
            None,
            NOW + 3 * MIN,
        )
        assert [r.id for r in await tx.claim_due_outbox("w2", NOW + 3 * MIN, NOW + 4 * MIN, 1)] == ["msg_2"]


async def test_claim_due_outbox_takes_over_expired_leases(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_outbox(outbox(1))
        assert len(await tx.claim_due_outbox("dead", NOW, NOW + MIN, 10)) == 1
    async with store.transaction() as tx:
        assert await tx.claim_due_outbox("w2", NOW + 30 * timedelta(seconds=1), NOW + 2 * MIN, 10) == []
        [row] = await tx.claim_due_outbox("w2", NOW + 2 * MIN, NOW + 3 * MIN, 10)
        assert (row.lease_owner, row.attempts) == ("w2", 2)


async def test_claim_due_outbox_is_disjoint_across_concurrent_claimers(store: Store) -> None:
    async with store.transaction() as tx:
        for i in range(200):
            await tx.insert_outbox(outbox(i))
    claims: Counter[str] = Counter()
    per_worker: Counter[str] = Counter()

    async def warm() -> None:  # open four pooled connections first, so all claimers start together
        async with store.transaction():
            await asyncio.sleep(0.01)

    await asyncio.gather(*(warm() for _ in range(4)))

    async def claimer(name: str) -> None:
        while True:
            async with store.transaction() as tx:
                rows = await tx.claim_due_outbox(name, NOW, NOW + MIN, 7)
                await asyncio.sleep(0.005)  # keep the row locks while the others claim
            if not rows:
                return
            claims.update(r.id for r in rows)
            per_worker[name] += len(rows)

    await asyncio.gather(*(claimer(f"w{i}") for i in range(4)))
    assert len(claims) == 200 and set(claims.values()) == {1}
    assert sum(per_worker.values()) == 200
    if is_pg(store):
        assert len(per_worker) == 4  # they really claimed side by side
    async with store.transaction() as tx:
        assert await tx.outbox_counts() == {"sending": 200}


# Events -------------------------------------------------------------------------------
async def test_events_count_oldest_and_list_windows(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.insert_event(event("reset_requested", NOW - 90 * MIN))  # outside the hour
        await tx.insert_event(event("reset_requested", NOW - 50 * MIN, user="u1"))
        await tx.insert_event(event("reset_requested", NOW - 10 * MIN, ip="198.51.100.1"))
        await tx.insert_event(event("reset_rate_limited", NOW - 5 * MIN))
        await tx.insert_event(event("reset_requested", NOW - 1 * MIN, email="b@example.com", user="u1"))
    hour_ago = NOW - 60 * MIN
    async with store.transaction() as tx:
        assert await tx.count_events("reset_requested", hour_ago) == 3
        assert await tx.count_events("reset_requested", hour_ago, mailbox="a@example.com") == 2
        assert await tx.count_events("reset_requested", hour_ago, net="203.0.113.9") == 2
        assert await tx.count_events("reset_requested", hour_ago, user_id="u1") == 2
        assert await tx.count_events("reset_requested", NOW - 120 * MIN, mailbox="a@example.com") == 3
        assert await tx.count_events("nothing", hour_ago) == 0
        # Bounded: min(count, at_most), what a limit check needs (both drivers).
        assert [await tx.count_events("reset_requested", hour_ago, at_most=k) for k in (0, 1, 2, 3, 4, 9)] == [
            0, 1, 2, 3, 3, 3,
        ]  # fmt: skip
        assert await tx.count_events("reset_requested", hour_ago, mailbox="a@example.com", at_most=1) == 1
        assert await tx.count_events("nothing", hour_ago, at_most=5) == 0
        assert await tx.oldest_event_since("reset_requested", hour_ago, mailbox="a@example.com") == NOW - 50 * MIN
        assert await tx.oldest_event_since("reset_requested", hour_ago, net="198.51.100.1") == NOW - 10 * MIN
        assert await tx.oldest_event_since("reset_requested", NOW) is None
        every = await tx.list_events()
        assert [e.created_at for e in every] == sorted((e.created_at for e in every), reverse=True)
        assert len(every) == 5 and all(isinstance(e.id, int) for e in every)
        mine = await tx.list_events(mailbox="a@example.com", since=hour_ago)
        assert [e.event_type for e in mine] == ["reset_rate_limited", "reset_requested", "reset_requested"]
        assert mine[0].metadata == {"k": "reset_rate_limited"} and mine[0].email == "a@example.com"
        either = await tx.list_events(mailbox="b@example.com", user_id="u1")  # mailbox OR user
        assert {e.created_at for e in either} == {NOW - 50 * MIN, NOW - MIN}
        typed = await tx.list_events(mailbox="a@example.com", event_types=["reset_rate_limited"])
        assert [e.event_type for e in typed] == ["reset_rate_limited"]
        assert len(await tx.list_events(limit=2)) == 2


async def test_events_are_keyed_by_mailbox_and_network(store: Store) -> None:
    # Issue 22, items 1-2: the writer gives the canonical mailbox, the store derives the
    # host network from the IP (IPv4-mapped folded, IPv6 by /64); both are what counts.
    tagged = event("reset_requested", NOW - MIN, email="a.b+x@gmail.com", ip="2001:db8:1:2::7")
    tagged.mailbox = "ab@gmail.com"
    plain = event("reset_requested", NOW - 2 * MIN, email="ab@googlemail.com", ip="2001:db8:1:2:ffff::1")
    plain.mailbox = "ab@gmail.com"
    mapped = event("reset_requested", NOW - 3 * MIN, email="c@example.com", ip="::ffff:203.0.113.9")
    async with store.transaction() as tx:
        for e in (tagged, plain, mapped, event("reset_requested", NOW - 4 * MIN)):
            await tx.insert_event(e)
    hour_ago = NOW - 60 * MIN
    async with store.reading() as tx:
        assert await tx.count_events("reset_requested", hour_ago, mailbox="ab@gmail.com") == 2
        assert await tx.count_events("reset_requested", hour_ago, net="2001:db8:1:2::/64") == 2
        assert await tx.count_events("reset_requested", hour_ago, net="203.0.113.9") == 2  # mapped = plain v4
        assert await tx.oldest_event_since("reset_requested", hour_ago, mailbox="ab@gmail.com") == NOW - 2 * MIN
        assert await tx.count_events("reset_requested", hour_ago, mailbox="c@example.com") == 1  # defaults to email
        one = await tx.list_events(mailbox="ab@gmail.com", email="a.b+x@gmail.com")
        assert [(e.email, e.mailbox, e.ip, e.net) for e in one] == [
            ("a.b+x@gmail.com", "ab@gmail.com", "2001:db8:1:2::7", "2001:db8:1:2::/64")
        ]
        both = await tx.list_events(mailbox="ab@gmail.com")
        assert {e.email for e in both} == {"a.b+x@gmail.com", "ab@googlemail.com"}


async def test_recorded_events_are_counted_apart_from_the_systems(store: Store) -> None:
    async with store.transaction() as tx:
        for kind in ("login_failed", "support_ticket", "reset_requested", "login_failed"):
            await tx.insert_event(event(kind, NOW - MIN))
        await tx.insert_event(event("login_failed", NOW - 90 * MIN))
        await tx.insert_event(event("login_failed", NOW - MIN, email="b@example.com"))
    async with store.reading() as tx:
        since = NOW - 60 * MIN
        assert await tx.recorded_events_since("a@example.com", since, excluding=["reset_requested"]) == (3, NOW - MIN)
        assert await tx.recorded_events_since("a@example.com", since, excluding=["login_failed"]) == (2, NOW - MIN)
        assert await tx.recorded_events_since("c@example.com", since, excluding=["x"]) == (0, None)


async def test_contact_facts_round_trip_and_replace(store: Store) -> None:
    async with store.transaction() as tx:
        assert await tx.get_contact_facts("a@example.com") is None
        await tx.put_contact_facts(ContactFacts("a@example.com", {"known_ips": {"203.0.113.9": 1.5}}, NOW))
    async with store.transaction() as tx:
        assert await tx.get_contact_facts("a@example.com") == ContactFacts(
            "a@example.com", {"known_ips": {"203.0.113.9": 1.5}}, NOW
        )
        await tx.put_contact_facts(ContactFacts("a@example.com", {"last": 2}, NOW + MIN))
    async with store.reading() as tx:
        assert await tx.get_contact_facts("a@example.com") == ContactFacts("a@example.com", {"last": 2}, NOW + MIN)


async def test_approvals_by_requester(store: Store) -> None:
    async with store.transaction() as tx:
        for i in range(5):
            a = approval(i, expires=NOW + 60 * MIN)
            a.requested_by = "key:a" if i < 3 else "key:b"
            await tx.insert_approval(a)
        assert await tx.decide_approval("apr_0", status="rejected", by="human", reason=None, now=NOW)
    async with store.reading() as tx:
        assert await tx.count_pending_approvals("key:a", 100) == 2
        assert await tx.count_pending_approvals("key:a", 1) == 1  # counted up to the bound only
        assert await tx.count_pending_approvals("key:c", 100) == 0
        mine = await tx.list_approvals("pending", 10, requested_by="key:b")
        assert {a.id for a in mine} == {"apr_3", "apr_4"}
        assert len(await tx.list_approvals(None, 10, requested_by="key:a")) == 3
        assert len(await tx.list_approvals("pending", 10)) == 4


# Audit ------------------------------------------------------------------------------
async def test_audit_chain_appended_concurrently_without_forks(store: Store) -> None:
    async def writer(w: int) -> None:
        for i in range(10):
            async with store.transaction() as tx:
                await tx.append_audit(at=NOW, actor=f"w{w}", action="act", subject=str(i), detail={"i": i})
                await asyncio.sleep(0)  # another writer gets to run before the commit

    await asyncio.gather(*(writer(w) for w in range(8)))
    async with store.transaction() as tx:
        entries = await tx.list_audit()
        assert [e.seq for e in entries] == list(range(1, 81))
        report = verify_chain(entries)
        assert report.ok and report.checked == 80, report.problem
        assert [e.seq for e in await tx.list_audit(after_seq=75)] == [76, 77, 78, 79, 80]
        assert [e.seq for e in await tx.list_audit(after_seq=10, limit=2)] == [11, 12]
        assert [e.seq for e in await tx.list_audit(newest=True, limit=3)] == [78, 79, 80]
        assert entries[0].detail == {"i": entries[0].detail["i"]} and entries[0].at == NOW


async def test_audit_append_returns_the_stored_entry(store: Store) -> None:
    async with store.transaction() as tx:
        first = await tx.append_audit(at=NOW, actor="a", action="x", subject="s", detail={"n": 1})
        second = await tx.append_audit(at=NOW + MIN, actor="a", action="y", subject="s", detail={})
    async with store.transaction() as tx:
        assert await tx.list_audit() == [first, second]
        assert second.prev_hash == first.hash


async def test_lock_serialises_transactions_on_a_key(store: Store) -> None:
    order: list[str] = []
    first_holds = asyncio.Event()

    async def first() -> None:
        async with store.transaction() as tx:
            await tx.lock("alert:a@example.com")
            order.append("first in")
            first_holds.set()
            await asyncio.sleep(0.1)
            order.append("first out")

    async def second() -> None:
        await first_holds.wait()
        async with store.transaction() as tx:
            await tx.lock("alert:a@example.com")
            order.append("second in")

    await asyncio.gather(first(), second())
    assert order == ["first in", "first out", "second in"]


# Idempotency keys ---------------------------------------------------------------------
async def test_an_idempotency_key_is_claimed_once_per_caller_and_freed_after_its_window(store: Store) -> None:
    async with store.transaction() as tx:
        assert await tx.claim_idempotency("key:a", "k1", "tool", "h1", NOW, NOW - 1440 * MIN) is None
        await tx.answer_idempotency("key:a", "k1", {"status": "sent"})
        # Another caller's key of the same name is another key.
        assert await tx.claim_idempotency("key:b", "k1", "tool", "h2", NOW, NOW - 1440 * MIN) is None
    async with store.transaction() as tx:
        again = await tx.claim_idempotency("key:a", "k1", "other", "h9", NOW + MIN, NOW + MIN - 1440 * MIN)
        assert again is not None and (again.tool, again.args_hash, again.answer) == ("tool", "h1", {"status": "sent"})
        assert again.created_at == NOW
        # A day later the key is free: taken over in place, answer cleared.
        later = NOW + 1441 * MIN
        assert await tx.claim_idempotency("key:a", "k1", "other", "h9", later, later - 1440 * MIN) is None
        taken = await tx.get_idempotency("key:a", "k1")
        assert taken is not None and (taken.tool, taken.args_hash, taken.answer) == ("other", "h9", None)
        await tx.release_idempotency("key:a", "k1")
        assert await tx.get_idempotency("key:a", "k1") is None
        assert await tx.get_idempotency("key:b", "k1") is not None


# API keys, purge --------------------------------------------------------------------
async def test_api_keys(store: Store) -> None:
    k1 = ApiKeyRecord("key_1", "app", ("send", "redeem"), "h1", NOW)
    k2 = ApiKeyRecord("key_2", "human", ("approve",), "h2", NOW + MIN)
    async with store.transaction() as tx:
        await tx.insert_api_key(k1)
        await tx.insert_api_key(k2)
    async with store.transaction() as tx:
        assert await tx.get_api_key("key_1") == k1
        assert await tx.get_api_key("key_x") is None
        assert await tx.list_api_keys() == [k1, k2]
        assert await tx.count_active_api_keys() == 2
        assert await tx.revoke_api_key("key_1", NOW + 2 * MIN)
        assert not await tx.revoke_api_key("key_1", NOW + 3 * MIN)
        assert (await tx.get_api_key("key_1")).revoked_at == NOW + 2 * MIN
        assert await tx.count_active_api_keys() == 1


async def test_purge_removes_only_old_finished_things(store: Store) -> None:
    cut = NOW + timedelta(seconds=1)
    async with store.transaction() as tx:
        await tx.insert_token(token(1, ttl=-MIN))  # expired before NOW
        await tx.insert_token(token(2))
        await tx.insert_event(event("reset_requested", NOW - 60 * MIN))
        await tx.insert_event(event("reset_requested", NOW + MIN))
        await tx.insert_outbox(outbox(1, status="sent"))
        await tx.insert_outbox(outbox(2, status="pending"))
        # Requests: 1 and 2 are referred to by a token or an outbox row; 3 ended and
        # nothing refers to it; 4 is still waiting for a human; 5 was decided long ago;
        # 6 is final but recent.
        for i, status in ((1, "sent"), (2, "queued"), (3, "blocked"), (4, "pending_approval"), (5, "rejected")):
            await tx.insert_send(send(i, status=status, at=NOW - 60 * MIN))
        await tx.insert_send(send(6, status="sent", at=NOW + MIN))
        await tx.insert_approval(approval(4, expires=NOW - MIN))  # pending: kept whatever its age
        await tx.insert_approval(approval(5, expires=NOW - MIN))
        assert await tx.decide_approval("apr_5", status="rejected", by="human", reason="no", now=NOW - 2 * MIN)
        await tx.put_contact_facts(ContactFacts("old@example.com", {"k": 1}, NOW - 60 * MIN))
        await tx.put_contact_facts(ContactFacts("new@example.com", {"k": 2}, NOW + MIN))
        assert await tx.claim_idempotency("key:a", "old", "t", "h", NOW - 60 * MIN, NOW - 61 * MIN) is None
        assert await tx.claim_idempotency("key:a", "new", "t", "h", NOW + MIN, NOW) is None
    async with store.transaction() as tx:
        assert await tx.purge(cut, 100) == {
            "tokens": 1, "events": 1, "outbox": 1, "approvals": 1, "contact_facts": 1, "sends": 3, "idempotency": 1
        }  # fmt: skip
        assert await tx.get_contact_facts("old@example.com") is None
        assert await tx.get_contact_facts("new@example.com") is not None
        assert await tx.get_idempotency("key:a", "old") is None and await tx.get_idempotency("key:a", "new")
        assert await tx.get_token("hash_2") is not None and await tx.get_outbox("msg_2") is not None
        assert await tx.get_approval("apr_4") is not None and await tx.get_approval("apr_5") is None
        kept = {i for i in range(1, 7) if await tx.get_send(f"req_{i}") is not None}
        # 1 goes too once its token and outbox row went in this same pass: children first.
        assert kept == {2, 4, 6}
        assert await tx.purge(cut, 100) == {
            "tokens": 0, "events": 0, "outbox": 0, "approvals": 0, "contact_facts": 0, "sends": 0, "idempotency": 0
        }  # fmt: skip


async def test_purge_deletes_at_most_limit_rows_a_table(store: Store) -> None:
    async with store.transaction() as tx:
        for i in range(7):
            await tx.insert_event(event("reset_requested", NOW - (60 + i) * MIN))
            await tx.insert_token(token(i, ttl=-MIN))
    counts = []
    for _ in range(4):
        async with store.transaction() as tx:
            got = await tx.purge(NOW, 3)
            counts.append((got["events"], got["tokens"]))
    assert counts == [(3, 3), (3, 3), (1, 1), (0, 0)]


# Migrations, pool -------------------------------------------------------------------
async def test_migrate_is_idempotent(store: Store, store_url: str) -> None:
    assert await store.migrate() == []  # open_store applied everything already
    assert await store.migrate() == []
    await store.ping()
    if not is_pg(store):
        other = await open_store(store_url, migrate=False)
        try:
            assert await other.migrate() == []
        finally:
            await other.aclose()


@pytest.mark.postgres
async def test_two_instances_migrate_at_once(pg_url: str) -> None:
    url = fresh_schema_url(pg_url)
    a = await open_store(url, pool_size=2, migrate=False)
    b = await open_store(url, pool_size=2, migrate=False)
    try:
        results = await asyncio.gather(a.migrate(), b.migrate(), a.migrate())
        # One instance applies every migration; the others find nothing left to do.
        everything = [f"{version}: {name}" for version, name, _ in MIGRATIONS]
        assert sorted(map(len, results)) == [0, 0, len(MIGRATIONS)]
        assert [r for r in results if r] == [everything]
        async with b.transaction() as tx:
            await tx.insert_send(send(1))
            # Migration 3 dropped the UNIQUE constraint on outbox.message_id here too.
            await tx.insert_outbox(outbox(1))
            await tx.insert_outbox(replace(outbox(2), message_id=outbox(1).message_id))
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.postgres
async def test_exhausted_pool_answers_store_unavailable_in_time(pg_url: str) -> None:
    store = await open_store(fresh_schema_url(pg_url), pool_size=1, pool_timeout=0.5)
    held, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with store.transaction() as tx:
            await tx.insert_send(send(1))
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    try:
        await held.wait()
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match=r"within 0.5s \(pool of 1 exhausted\)"):
            async with store.transaction():
                pass
        assert 0.4 < time.monotonic() - started < 3.0
    finally:
        release.set()
        await holder
    async with store.transaction() as tx:  # the pool recovers once the holder is done
        assert await tx.get_send("req_1") is not None
    await store.aclose()


# PostgreSQL adapter details (no server needed) ---------------------------------------
def test_placeholders_rowcounts_and_display_url() -> None:
    assert to_pg("SELECT ? , '?', \"a?\" WHERE x = ? AND y IN (?,?)") == (
        "SELECT $1 , '?', \"a?\" WHERE x = $2 AND y IN ($3,$4)"
    )
    assert to_pg("SELECT 1") == "SELECT 1"
    assert (rowcount("UPDATE 3"), rowcount("INSERT 0 1"), rowcount("DELETE 0"), rowcount("CREATE TABLE")) == (
        3, 1, 0, 0,
    )  # fmt: skip
    assert url_for_display("postgresql://app:s3cr%40t@db:5432/reset") == "postgresql://app:***@db:5432/reset"
    assert (
        url_for_display("postgres://db/x?user=a&password=hunter2&ssl=1") == "postgres://db/x?user=a&password=***&ssl=1"
    )
    assert url_for_display("postgresql://app@db/reset") == "postgresql://app@db/reset"


async def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StoreUnavailableError) as info:
        await PostgresStore.open("postgresql://app:topsecret@127.0.0.1:1/reset", pool_size=1, pool_timeout=2)
    assert "topsecret" not in str(info.value) and "127.0.0.1:1" in str(info.value)
    assert info.value.__cause__ is not None
