"""Upgrading a database made by an earlier version: data kept, the new indexes in use."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reset_mcp.audit import verify_chain
from reset_mcp.store import open_store
from reset_mcp.store import sqlite as sqlite_store
from reset_mcp.store.records import ContactEvent, OutboxRow
from reset_mcp.store.schema import MIGRATIONS

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


async def test_a_version_1_database_upgrades_with_its_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS[:1])  # what version 1 shipped
    old = await open_store(url)
    async with old.transaction() as tx:  # as version 1 wrote them (eight columns)
        for i, (ip, user) in enumerate([("203.0.113.9", "u1"), (None, "u1"), (None, None)]):
            await tx._exec(  # type: ignore[attr-defined]
                "INSERT INTO events (email, user_id, event_type, ip, device, country, metadata, created_at) "
                "VALUES (?,?,?,?,?,?,?,?)",
                ("a@example.com", user, f"t{i}", ip, None, None, "{}", NOW.timestamp()),
            )
    await old.aclose()
    with sqlite3.connect(tmp_path / "old.db") as conn:
        assert [v for (v,) in conn.execute("SELECT version FROM schema_migrations")] == [1]

    monkeypatch.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS)
    store = await open_store(url)
    try:
        async with store.reading() as tx:
            assert await tx.count_events("t0", NOW - timedelta(hours=1), net="203.0.113.9") == 1
            assert await tx.count_events("t1", NOW - timedelta(hours=1), user_id="u1") == 1
            assert len(await tx.list_events(mailbox="a@example.com", limit=10)) == 3
    finally:
        await store.aclose()
    conn = sqlite3.connect(tmp_path / "old.db")
    versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [v for v, _, _ in MIGRATIONS]
    plan = " ".join(
        row[3]
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM events WHERE net = ? AND event_type = ? AND created_at >= ?",
            ("x", "t0", 0),
        )
    )
    assert "events_net" in plan  # the partial index serves `net = ?`
    indexed = conn.execute("SELECT COUNT(*) FROM events INDEXED BY events_net WHERE net IS NOT NULL").fetchone()[0]
    assert indexed == 1  # only the event that has an IP is in it


async def test_version_3_rebuilds_keep_every_row_and_the_audit_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database as version 2 left it, with events, an audit chain and a pending outbox
    # row; version 3 rebuilds three SQLite tables and must lose or change nothing.
    path = tmp_path / "v2.db"
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS[:2])
    old = await open_store(f"sqlite:///{path}")
    async with old.transaction() as tx:
        for i in range(5):
            await tx._exec(  # type: ignore[attr-defined]
                "INSERT INTO events (email, event_type, metadata, created_at) VALUES (?,?,?,?)",
                (f"u{i}@example.com", "t", f'{{"i":{i}}}', NOW.timestamp()),
            )
            await tx.append_audit(at=NOW, actor="test", action=f"a{i}", subject=f"s{i}", detail={"i": i})
        pending = OutboxRow(
            id="msg_1", send_id="req_1", kind="security_alert", recipient="a@example.com",
            message_id="<msg_1@example.com>", status="pending", created_at=NOW, next_attempt_at=NOW,
            payload={"reason": "x"},
        )  # fmt: skip
        await tx.insert_outbox(pending)
    async with old.reading() as tx:
        events_before = await tx._all("SELECT id, email, metadata FROM events ORDER BY id")  # type: ignore[attr-defined]
        audit_before = await tx.list_audit()
    await old.aclose()

    monkeypatch.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS)
    store = await open_store(f"sqlite:///{path}")
    try:
        async with store.reading() as tx:
            after = sorted(await tx.list_events(limit=100), key=lambda e: e.id or 0)
            assert [(e.id, e.email, e.metadata) for e in after] == [  # ids included
                (r["id"], r["email"], {"i": i}) for i, r in enumerate(events_before)
            ]
            audit = await tx.list_audit()
            assert audit == audit_before and verify_chain(audit).ok
            assert (await tx.get_outbox("msg_1")) is not None
        async with store.transaction() as tx:  # new rows continue both sequences
            await tx.insert_event(ContactEvent(email="n@example.com", event_type="t", created_at=NOW, metadata={}))
            entry = await tx.append_audit(at=NOW, actor="test", action="after", subject="s", detail={})
            claimed = await tx.claim_due_outbox("w", NOW, NOW + timedelta(minutes=1), 10)
        assert entry.seq == audit_before[-1].seq + 1
        assert [row.id for row in claimed] == ["msg_1"]
        async with store.reading() as tx:
            newest = (await tx.list_events(mailbox="n@example.com", limit=1))[0]
            assert verify_chain(await tx.list_audit()).ok
        assert newest.id is not None and newest.id > max(r["id"] for r in events_before)
    finally:
        await store.aclose()
    conn = sqlite3.connect(path)
    schema = {name: sql for name, sql in conn.execute("SELECT name, sql FROM sqlite_master")}
    assert "AUTOINCREMENT" not in schema["events"]
    assert "seq INTEGER PRIMARY KEY" in schema["audit"]
    assert not [n for n in schema if n.startswith("sqlite_autoindex_audit") or n == "sqlite_autoindex_outbox_2"]
    assert {"events_mailbox", "events_user", "events_net", "events_created", "outbox_due", "outbox_send"} <= set(schema)


async def test_each_migration_is_announced_before_it_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="reset_mcp.store")
    store = await open_store(f"sqlite:///{tmp_path / 'new.db'}")
    await store.aclose()
    said = [r.getMessage() for r in caplog.records if r.name == "reset_mcp.store"]
    assert said == [f"applying schema migration {v}: {name}" for v, name, _ in MIGRATIONS]
