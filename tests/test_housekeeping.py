"""`housekeeping.purge` and `reset-mcp purge`: batches, totals, bad input, writers not shut out."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
import pytest

from reset_mcp.cli.admin import run_admin
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings
from reset_mcp.flows.retention import purge, retention_loop
from reset_mcp.store import Store, open_store
from reset_mcp.store.records import ContactEvent, TokenRecord

pytestmark = pytest.mark.anyio
NOW = datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)


async def filled(tmp_path: Path, n: int) -> Store:
    """A store holding n 40-day-old tokens and events, and one event from NOW."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = await open_store(url)
    async with store.transaction() as tx:
        for i in range(n):
            at = NOW - timedelta(days=40, minutes=i)
            await tx.insert_event(ContactEvent(email=f"u{i}@example.com", event_type="reset_requested", created_at=at))
            await tx.insert_token(TokenRecord(f"h{i}", f"req_{i}", f"u{i}", f"u{i}@example.com", "k", at, at))
        recent = ContactEvent(email="new@example.com", event_type="reset_requested", created_at=NOW)
        await tx.insert_event(recent)
    return store


async def test_purge_goes_in_batches_and_totals_them(tmp_path: Path) -> None:
    store = await filled(tmp_path, 25)
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    totals = await purge(store, NOW - timedelta(days=30), batch=10)
    assert totals == {
        "tokens": 25, "events": 25, "outbox": 0, "approvals": 0, "contact_facts": 0, "sends": 0, "idempotency": 0
    }  # fmt: skip
    assert statements.count("COMMIT") == 3  # 10 + 10 + 5: three short transactions
    async with store.transaction() as tx:
        assert await tx.count_events("reset_requested", NOW - timedelta(days=400), mailbox="new@example.com") == 1
    await store.aclose()


async def test_writers_get_in_between_batches(tmp_path: Path) -> None:
    store = await filled(tmp_path, 400)
    finished: list[float] = []

    async def writer() -> None:
        for i in range(5):
            async with store.transaction() as tx:
                await tx.insert_event(ContactEvent(email=f"w{i}@example.com", event_type="x", created_at=NOW))
            finished.append(time.monotonic())
            await anyio.sleep(0)

    purged_at: list[float] = []

    async def purger() -> None:
        await purge(store, NOW - timedelta(days=30), batch=20)  # 20 batches at least
        purged_at.append(time.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(purger)
        tg.start_soon(writer)
    # The writer did not wait for the whole purge: its commits landed while it ran.
    assert len(finished) == 5 and finished[-1] < purged_at[0]
    async with store.transaction() as tx:
        assert await tx.count_events("x", NOW - timedelta(days=1)) == 5
    await store.aclose()


async def test_purge_refuses_a_batch_below_one(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'p.db'}")
    with pytest.raises(ValueError, match="at least 1"):
        await purge(store, NOW, batch=0)
    await store.aclose()


async def test_the_retention_loop_purges_on_its_schedule(tmp_path: Path) -> None:
    store = await filled(tmp_path, 30)
    clock = FakeClock(NOW)
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(retention_loop, store, clock, 30, every=0.05, first_after=0.01))
        with anyio.fail_after(5):
            while True:  # the first pass after `first_after`
                async with store.reading() as tx:
                    if await tx.count_events("reset_requested", NOW - timedelta(days=400)) == 1:
                        break
                await anyio.sleep(0.01)
        async with store.transaction() as tx:  # an old event arrives later: a later pass takes it
            old = NOW - timedelta(days=31)
            await tx.insert_event(ContactEvent(email="late@example.com", event_type="reset_requested", created_at=old))
        with anyio.fail_after(5):
            while True:
                async with store.reading() as tx:
                    if await tx.count_events("reset_requested", NOW - timedelta(days=400)) == 1:
                        break
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    async with store.reading() as tx:  # what is within the retention stays
        assert await tx.count_events("reset_requested", NOW - timedelta(days=1), mailbox="new@example.com") == 1
    await store.aclose()


def test_retention_days_is_checked_at_start() -> None:
    from reset_mcp.config import load_settings
    from reset_mcp.errors import ConfigError

    assert load_settings(retention_days=0).retention_days == 0  # off
    assert load_settings().retention_days == 90  # abuse detection looks 90 days back
    with pytest.raises(ConfigError, match="RESET_MCP_RETENTION_DAYS"):
        load_settings(retention_days=-1)


def test_cli_purge_reports_counts_and_refuses_bad_days(
    settings_factory: object, capsys: pytest.CaptureFixture[str]
) -> None:
    settings: Settings = settings_factory()  # type: ignore[operator]
    assert run_admin(settings, argparse.Namespace(command="purge", days=0)) == 2
    assert "--days must be at least 1" in capsys.readouterr().err
    assert run_admin(settings, argparse.Namespace(command="purge", days=30)) == 0
    out = capsys.readouterr().out
    counts = "0 tokens, 0 events, 0 outbox, 0 approvals, 0 contact_facts, 0 sends, 0 idempotency"
    assert f"{counts} deleted (older than 30 days)" in out
    assert run_admin(settings, argparse.Namespace(command="purge", days=None)) == 0  # the setting's
    assert "(older than 90 days)" in capsys.readouterr().out
