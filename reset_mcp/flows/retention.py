"""Retention: deleting what ended long ago, in short transactions, from the job runner on a
schedule (`RESET_MCP_RETENTION_DAYS`) or from `reset-mcp purge`.

One DELETE over a million rows would hold SQLite's only write lock for over a minute,
and every reset would wait behind it (bench/README.md has the figures). So the purge
goes in batches of `PURGE_BATCH` rows a table, each its own transaction, and rests as
long as a batch took before the next: writers, in this process or another, get the
lock at least half of the time, and no one waits longer than one batch.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timedelta

import anyio

from reset_mcp.clock import Clock
from reset_mcp.errors import ResetMCPError
from reset_mcp.store import Store

log = logging.getLogger(__name__)

PURGE_BATCH = 500  # rows a table a transaction: a short hold of the write lock even at a million rows
RETENTION_EVERY_SECONDS = 6 * 3600
RETENTION_FIRST_AFTER_SECONDS = 60.0  # not during start-up, when instances start together


async def purge(store: Store, before: datetime, *, batch: int = PURGE_BATCH) -> dict[str, int]:
    """Delete what `Tx.purge` deletes, everything before `before`; totals by table."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    totals: Counter[str] = Counter()
    while True:
        started = time.monotonic()
        async with store.transaction() as tx:
            counts = await tx.purge(before, batch)
        totals.update(counts)
        if all(n < batch for n in counts.values()):
            return {table: totals[table] for table in counts}
        await anyio.sleep(min(time.monotonic() - started, 1.0))


async def retention_loop(
    store: Store,
    clock: Clock,
    days: int,
    *,
    every: float = RETENTION_EVERY_SECONDS,
    first_after: float = RETENTION_FIRST_AFTER_SECONDS,
) -> None:
    """Purge what ended more than `days` ago, now and then, until cancelled."""
    await anyio.sleep(first_after)
    while True:
        try:
            counts = await purge(store, clock.now() - timedelta(days=days))
            if any(counts.values()):
                log.info("retention (%d days): deleted %s", days, ", ".join(f"{n} {t}" for t, n in counts.items()))
        except ResetMCPError as exc:  # the database away for a moment: try again next time
            log.warning("retention purge failed: %s", exc)
        await anyio.sleep(every)
