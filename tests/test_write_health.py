"""Write health for /healthz (issue 21, item 6): a store says when its writes are failing
for a reason of its own (busy, read-only, unavailable), and stops saying so once a write
commits; a caller's broken constraint is no such reason."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from pg import fresh_schema_url, pg_database_fixture

from reset_mcp.errors import StoreBusyError, StoreError
from reset_mcp.store import health, open_store
from reset_mcp.store.deadline import deadline
from reset_mcp.store.health import WriteHealth
from reset_mcp.store.records import SendRecord

pg_url = pg_database_fixture()
NOW = datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)


def send(i: int | str) -> SendRecord:
    return SendRecord(
        id=f"req_{i}", kind="password_reset", recipient="a@example.com", user_id="u1", status="queued",
        reason=None, requested_by="agent", decision="send", created_at=NOW, updated_at=NOW, payload={},
    )  # fmt: skip


async def test_sqlite_a_write_past_its_lock_deadline_is_reported_until_a_write_commits(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = await open_store(f"sqlite:///{path}")
    assert store.write_problem() is None
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with pytest.raises(StoreBusyError), deadline(0.2):
        async with store.transaction() as tx:
            await tx.insert_send(send(1))
    problem = store.write_problem()
    assert problem is not None and problem.startswith(health.BUSY)
    async with store.reading() as tx:  # reads answer meanwhile, and clear nothing
        assert await tx.get_send("req_1") is None
    assert store.write_problem() is not None
    other.execute("ROLLBACK")
    other.close()
    async with store.transaction() as tx:
        await tx.insert_send(send(2))
    assert store.write_problem() is None
    await store.aclose()


async def test_sqlite_a_broken_constraint_is_not_a_health_problem(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'h.db'}")
    async with store.transaction() as tx:
        await tx.insert_send(send(1))
    with pytest.raises(StoreError):
        async with store.transaction() as tx:
            await tx.insert_send(send(1))  # the same id again
    assert store.write_problem() is None
    await store.aclose()


@pytest.mark.postgres
async def test_postgres_writes_refused_are_reported_reads_are_not(pg_url: str) -> None:
    url = fresh_schema_url(pg_url)
    store = await open_store(url)
    async with store.transaction() as tx:
        await tx.insert_send(send(1))
    with pytest.raises(StoreError):
        async with store.transaction() as tx:
            await tx.insert_send(send(1))  # a constraint: not a health problem
    assert store.write_problem() is None
    # The same database through sessions that are read-only (a failover to a replica).
    replica = await open_store(url + quote(" -cdefault_transaction_read_only=on"), migrate=False)
    async with replica.reading() as tx:
        assert await tx.get_send("req_1") is not None
    assert replica.write_problem() is None
    with pytest.raises(StoreError):
        async with replica.transaction() as tx:
            await tx.insert_send(send(2))
    problem = replica.write_problem()
    assert problem is not None and problem.startswith(health.FAILED)
    await replica.aclose()
    await store.aclose()


def test_a_failure_is_forgotten_once_it_is_no_longer_recent(monkeypatch: pytest.MonkeyPatch) -> None:
    watched = WriteHealth()
    clock = [1000.0]
    monkeypatch.setattr(health.time, "monotonic", lambda: clock[0])
    watched.failed(StoreBusyError("busy"))
    assert watched.problem() == f"{health.BUSY} (0s ago)"
    clock[0] += health.RECENT_SECONDS - 1
    assert watched.problem() is not None
    clock[0] += 2
    assert watched.problem() is None
