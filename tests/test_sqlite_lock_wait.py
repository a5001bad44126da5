"""SQLite: waiting for another process's write lock (issue 21 item 4).

The other process is a second connection holding `BEGIN IMMEDIATE`, as the CLI or a
stuck script would. While a write of this process waits for it, this process's reads
go on; the wait ends at one deadline per call with `StoreBusyError`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from reset_mcp.errors import StoreBusyError, StoreUnavailableError
from reset_mcp.store import open_store, sqlite
from reset_mcp.store.deadline import deadline, wait_budget
from reset_mcp.store.records import SendRecord
from reset_mcp.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio
NOW = datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)


def send(i: int) -> SendRecord:
    return SendRecord(
        id=f"req_{i}", kind="password_reset", recipient="a@example.com", user_id="u1", status="queued",
        reason=None, requested_by="agent", decision="send", created_at=NOW, updated_at=NOW, payload={},
    )  # fmt: skip


@contextmanager
def held(path: Path) -> Iterator[sqlite3.Connection]:
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


async def opened(path: Path) -> SqliteStore:
    store = await open_store(f"sqlite:///{path}")
    assert isinstance(store, SqliteStore)
    async with store.transaction() as tx:
        await tx.insert_send(send(0))
    return store


async def test_reads_go_on_while_a_write_of_this_process_waits_for_another_processs_lock(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await opened(path)
    reads: list[float] = []
    with held(path) as other:
        async with anyio.create_task_group() as tg:

            async def writer() -> None:
                async with store.transaction() as tx:  # waits: the other process has the lock
                    await tx.insert_send(send(1))

            tg.start_soon(writer)
            await anyio.sleep(0.05)  # the writer is waiting now
            for _ in range(10):
                started = time.monotonic()
                async with store.reading() as tx:
                    assert await tx.get_send("req_0") is not None
                reads.append(time.monotonic() - started)
                await anyio.sleep(0.05)
            other.execute("ROLLBACK")  # the writer gets the lock
    assert max(reads) < 0.1, reads
    async with store.reading() as tx:
        assert await tx.get_send("req_1") is not None
    await store.aclose()


async def test_a_write_gives_up_at_its_deadline_with_store_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "LOCK_WAIT_SECONDS", 0.4)
    path = tmp_path / "s.db"
    store = await opened(path)
    with held(path):
        started = time.monotonic()
        with pytest.raises(StoreBusyError, match="busy") as caught:
            async with store.transaction() as tx:
                await tx.insert_send(send(1))
        elapsed = time.monotonic() - started
    assert 0.35 < elapsed < 1.0
    assert isinstance(caught.value, StoreUnavailableError)  # mapped as "try again shortly" everywhere
    async with store.transaction() as tx:  # the lock gone, the store works
        await tx.insert_send(send(1))
    await store.aclose()


async def test_one_deadline_covers_every_transaction_of_a_call(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await opened(path)
    with held(path), deadline(0.5):
        started = time.monotonic()
        for i in (1, 2, 3):
            with pytest.raises(StoreBusyError):
                async with store.transaction() as tx:
                    await tx.insert_send(send(i))
        elapsed = time.monotonic() - started
        assert wait_budget(5.0) == 0.0
    assert elapsed < 0.9  # three transactions, one 0.5 s deadline (not 3 x 5 s)
    assert wait_budget(5.0) == 5.0  # outside the block, the store's own limit again
    await store.aclose()


async def test_writers_that_waited_all_commit_once_the_lock_is_free(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await opened(path)
    with held(path) as other:
        async with anyio.create_task_group() as tg:
            for i in range(1, 21):

                async def one(i: int = i) -> None:
                    async with store.transaction() as tx:
                        await tx.insert_send(send(i))

                tg.start_soon(one)
            await anyio.sleep(0.3)
            other.execute("ROLLBACK")
    async with store.reading() as tx:
        assert all([await tx.get_send(f"req_{i}") is not None for i in range(21)])
    await store.aclose()


async def test_nested_deadlines_never_extend_the_outer_one() -> None:
    with deadline(0.2):
        with deadline(10):
            assert wait_budget(5.0) <= 0.2
        with deadline(0.05):
            assert wait_budget(5.0) <= 0.05
        assert 0.05 < wait_budget(5.0) <= 0.2
