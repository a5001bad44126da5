"""Upgrading a database made by an earlier version: data kept, the new indexes in use."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reset_mcp.store import open_store
from reset_mcp.store import sqlite as sqlite_store
from reset_mcp.store.records import ContactEvent
from reset_mcp.store.schema import MIGRATIONS

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


async def test_a_version_1_database_upgrades_with_its_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS[:1])  # what version 1 shipped
    old = await open_store(url)
    async with old.transaction() as tx:
        for i, (ip, user) in enumerate([("203.0.113.9", "u1"), (None, "u1"), (None, None)]):
            await tx.insert_event(
                ContactEvent(
                    email="a@example.com", event_type=f"t{i}", created_at=NOW, ip=ip, user_id=user, metadata={}
                )
            )
    await old.aclose()
    with sqlite3.connect(tmp_path / "old.db") as conn:
        assert [v for (v,) in conn.execute("SELECT version FROM schema_migrations")] == [1]

    monkeypatch.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS)
    store = await open_store(url)
    try:
        async with store.reading() as tx:
            assert await tx.count_events("t0", NOW - timedelta(hours=1), ip="203.0.113.9") == 1
            assert await tx.count_events("t1", NOW - timedelta(hours=1), user_id="u1") == 1
            assert len(await tx.list_events(email="a@example.com", limit=10)) == 3
    finally:
        await store.aclose()
    conn = sqlite3.connect(tmp_path / "old.db")
    versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [v for v, _, _ in MIGRATIONS]
    plan = " ".join(
        row[3]
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM events WHERE ip = ? AND event_type = ? AND created_at >= ?",
            ("x", "t0", 0),
        )
    )
    assert "events_ip" in plan  # the partial index serves `ip = ?`
    indexed = conn.execute("SELECT COUNT(*) FROM events INDEXED BY events_ip WHERE ip IS NOT NULL").fetchone()[0]
    assert indexed == 1  # only the event that has an IP is in it
