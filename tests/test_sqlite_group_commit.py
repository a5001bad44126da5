"""SQLite group commit (`SqliteStore.transaction`): concurrent transactions share one
COMMIT, and each still has the meaning of a transaction of its own.

What every store must do (durable on exit, a failing body alone rolled back, under
concurrency) is in test_store_contract.py for SQLite and PostgreSQL alike; this file
checks what is particular to the grouping: that it groups, that a COMMIT failing fails
every member, and that no member's cancellation strands the others.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from reset_mcp.errors import StoreError
from reset_mcp.store import open_store
from reset_mcp.store.records import SendRecord
from reset_mcp.store.sqlite import SqliteStore
from reset_mcp.store.sqlite_tx import SqliteTx

pytestmark = pytest.mark.anyio
NOW = datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)


def send(i: int) -> SendRecord:
    return SendRecord(
        id=f"req_{i}", kind="password_reset", recipient="a@example.com", user_id="u1", status="queued",
        reason=None, requested_by="agent", decision="send", created_at=NOW, updated_at=NOW, payload={},
    )  # fmt: skip


async def open_counting(path: Path) -> tuple[SqliteStore, list[str]]:
    store = await open_store(f"sqlite:///{path}")
    assert isinstance(store, SqliteStore)
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    return store, statements


def committed_ids(path: Path) -> set[str]:
    """What another connection (another process, say) sees: committed rows only."""
    with sqlite3.connect(path) as other:
        return {row[0] for row in other.execute("SELECT id FROM sends")}


async def test_concurrent_transactions_share_commits_and_each_is_durable_on_exit(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store, statements = await open_counting(path)
    seen_on_exit: dict[int, bool] = {}

    async def one(i: int) -> None:
        async with store.transaction() as tx:
            await tx.insert_send(send(i))
        # Durable now: a separate connection already sees the row.
        seen_on_exit[i] = f"req_{i}" in committed_ids(path)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i)
    await store.aclose()
    commits = sum(1 for s in statements if s == "COMMIT")
    assert seen_on_exit == {i: True for i in range(20)}
    assert committed_ids(path) == {f"req_{i}" for i in range(20)}
    assert 1 <= commits < 20  # grouped: fewer commits than transactions


async def test_a_lone_transaction_commits_on_exit(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store, statements = await open_counting(path)
    async with store.transaction() as tx:
        await tx.insert_send(send(1))
    assert committed_ids(path) == {"req_1"}
    async with store.transaction() as tx:
        assert await tx.get_send("req_1") is not None
    await store.aclose()
    assert statements.count("COMMIT") == 2


async def test_a_failing_commit_fails_every_member_and_keeps_nothing(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store, _ = await open_counting(path)
    async with store.transaction() as tx:
        assert isinstance(tx, SqliteTx)
        await tx._exec("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        await tx._exec("CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    outcomes: dict[int, str] = {}

    async def member(i: int) -> None:
        try:
            async with store.transaction() as tx:
                await tx.insert_send(send(i))
                if i == 3:  # checked only at COMMIT: the whole group's COMMIT fails
                    assert isinstance(tx, SqliteTx)
                    await tx._exec("INSERT INTO child (p) VALUES (42)")
            outcomes[i] = "committed"
        except StoreError as exc:
            outcomes[i] = f"failed: {exc}"

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(member, i)
    committed = committed_ids(path)
    # Whoever shared the failed COMMIT failed with it, and none of its work is kept; what
    # committed in another group is all there.
    for i, outcome in outcomes.items():
        if outcome == "committed":
            assert f"req_{i}" in committed
        else:
            assert "FOREIGN KEY" in outcome and f"req_{i}" not in committed
    assert outcomes[3].startswith("failed")
    assert sum(o.startswith("failed") for o in outcomes.values()) >= 2  # 3 shared its COMMIT
    # The store is usable afterwards.
    async with store.transaction() as tx:
        await tx.insert_send(send(99))
    assert "req_99" in committed_ids(path)
    await store.aclose()


async def test_a_body_that_raises_is_rolled_back_alone_inside_its_group(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store, statements = await open_counting(path)

    async def member(i: int) -> None:
        async with store.transaction() as tx:
            await tx.insert_send(send(i))
            if i % 2:
                raise ValueError(f"body {i} fails")

    failures: list[str] = []

    async def guarded(i: int) -> None:
        try:
            await member(i)
        except ValueError as exc:
            failures.append(str(exc))

    async with anyio.create_task_group() as tg:
        for i in range(10):
            tg.start_soon(guarded, i)
    await store.aclose()
    assert sorted(failures) == sorted(f"body {i} fails" for i in range(1, 10, 2))
    assert committed_ids(path) == {f"req_{i}" for i in range(0, 10, 2)}
    assert statements.count("COMMIT") < 10 and "ROLLBACK TO body" in statements


async def test_cancelling_the_leader_does_not_strand_its_group(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store, _ = await open_counting(path)
    done: list[int] = []

    async def member(i: int) -> None:
        async with store.transaction() as tx:
            await tx.insert_send(send(i))
        done.append(i)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as leader_scope:
                # The leader's body is done; it is cancelled while it waits for the others.
                async with store.transaction() as tx:
                    await tx.insert_send(send(0))
                    for i in range(1, 5):
                        tg.start_soon(member, i)
                    leader_scope.cancel()
    assert sorted(done) == [1, 2, 3, 4]
    # Its own work committed: its body had finished, and the commit is shielded.
    assert committed_ids(path) == {f"req_{i}" for i in range(5)}
    await store.aclose()


async def test_reading_waits_for_an_open_group_and_never_sees_its_uncommitted_writes(tmp_path: Path) -> None:
    store, _ = await open_counting(tmp_path / "g.db")
    seen: list[bool] = []

    async def reader() -> None:
        async with store.reading() as tx:
            seen.append(await tx.get_send("req_1") is not None)

    async with anyio.create_task_group() as tg, store.transaction() as tx:
        await tx.insert_send(send(1))
        tg.start_soon(reader)  # runs while the group is open, before its COMMIT
    # The reader ran only after the COMMIT, so it saw the row committed, never half-way.
    assert seen == [True]
    await store.aclose()


async def test_reading_does_not_wait_for_another_processs_writer(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store, _ = await open_counting(path)
    async with store.transaction() as tx:
        await tx.insert_send(send(1))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    other.execute("INSERT INTO sends (id, kind, recipient, status, requested_by, decision, created_at, "
                  "updated_at, payload) VALUES ('req_x', 'k', 'r', 'queued', 'a', 'd', 0, 0, '{}')")  # fmt: skip
    try:
        with anyio.fail_after(1):  # a write transaction would wait up to 5 s here
            async with store.reading() as tx:
                assert await tx.get_send("req_1") is not None
                assert await tx.get_send("req_x") is None  # not committed over there
    finally:
        other.execute("ROLLBACK")
        other.close()
    await store.aclose()
