"""Row 6, growth: request and consume latency with 1 thousand, 100 thousand and 1 million
tokens and as many contact events already stored.

Prefill goes straight into SQLite with `executemany` in one transaction, spread over the
last 90 days across many accounts and IPs, as a real deployment accumulates them. Then:
the request path's statements are traced and each one's query plan checked (no full
table scan: every lookup is an index range, windows are bounded by `created_at`), request
and consume latencies are measured, and `housekeeping.purge` (30 days, in batches) shows
what stays and how long a writer beside it waits at most.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

from bench.common import Identities, bench_settings, now, summary
from bench.http_rows import tokens_from
from bench.sink import SinkClient
from reset_mcp.app import build_app
from reset_mcp.flows.retention import purge
from reset_mcp.store import open_store
from reset_mcp.store.records import ContactEvent

DAY = 86400.0
EVENT_TYPES = ("reset_requested", "email_queued", "email_delivered", "reset_consumed", "reset_rate_limited")


def now_utc() -> datetime:
    return datetime.now(UTC)


TABLES = ("tokens", "events", "sends", "outbox", "audit")


def prefill(db: Path, n: int, seed: int = 1) -> float:
    """n tokens and n contact events; returns the seconds it took.

    Indexes are dropped for the load and rebuilt after it (SQLite's fast path for bulk
    loads); rows are generated lazily so a million of them never sit in memory at once."""
    rng = random.Random(seed)
    t_now = time.time()
    accounts = max(n // 4, 1)
    # Precomputed pools: the generator's cost stays small next to SQLite's.
    whens = [t_now - rng.random() * 90 * DAY - 120 for _ in range(4096)]  # none within two minutes
    ips = [
        f"{rng.randint(11, 99)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(4093)
    ]
    states = [rng.random() for _ in range(4091)]
    started = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('tokens', 'events')"
    ).fetchall()
    conn.execute("BEGIN")
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")

    def tokens() -> Any:
        for i in range(n):
            a, at, state = i % accounts, whens[i % 4096], states[i % 4091]
            sid = f"req_pre{i:08d}"
            revoked = 0.3 <= state < 0.5
            yield (
                hashlib.sha256(sid.encode()).hexdigest(), sid, f"u-pre-{a}", f"pre-{a}@bench.example.com",
                "prefill", at, at + 900, at + 300 if state < 0.3 else None, at + 60 if revoked else None,
                "superseded by a new request" if revoked else None, None,
            )  # fmt: skip

    def events() -> Any:
        for i in range(n):
            a = (i * 7) % accounts
            ip = ips[i % 4093]
            yield (
                f"pre-{a}@bench.example.com", f"u-pre-{a}", EVENT_TYPES[i % len(EVENT_TYPES)], ip,
                "chrome/windows", None, "{}", whens[(i * 13) % 4096], f"pre-{a}@bench.example.com", ip,
            )  # fmt: skip

    conn.executemany("INSERT INTO tokens VALUES (?,?,?,?,?,?,?,?,?,?,?)", tokens())
    conn.executemany(
        "INSERT INTO events (email, user_id, event_type, ip, device, country, metadata, created_at, mailbox, net) "
        "VALUES (?,?,?,?,?,?,?,?,?,?)",
        events(),
    )
    for _, sql in indexes:
        conn.execute(sql)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


def counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    finally:
        conn.close()


def full_scans(db: Path, statements: list[str]) -> list[str]:
    """Statements whose plan scans a whole table (SQLite says `SCAN t` without an index).

    `SCAN w` of a subquery's alias (a bounded count: `COUNT(*) FROM (... LIMIT n) AS w`)
    reads the subquery's own rows, found by its index, not a table: only a table's name counts."""
    conn = sqlite3.connect(db)
    bad = []
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for sql in statements:
            if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT")):
                continue
            for row in conn.execute("EXPLAIN QUERY PLAN " + sql):
                detail = row[-1]
                scanned = detail.split()[1] if detail.startswith("SCAN ") and len(detail.split()) > 1 else ""
                if scanned in tables and "USING" not in detail and "CONSTANT" not in detail:
                    bad.append(f"{detail}: {sql[:160]}")
    finally:
        conn.close()
    return bad


async def one_size(sink_port: int, sink: SinkClient, n: int, requests: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-growth-{n}-") as tmp:
        data = Path(tmp)
        db = data / "reset-mcp.db"
        store = await open_store(f"sqlite:///{db}")
        await store.aclose()
        prefill_s = prefill(db, n)
        settings = bench_settings(data, sink_port)
        ids = Identities(f"grow{n}")
        req_lat: list[float] = []
        traced: list[str] = []
        async with build_app(settings) as app:
            conn = getattr(app.store, "_conn", None)
            for _ in range(20):  # warm the page cache and the templates
                await app.service.request_password_reset(ids.reset_input())
            await sink.capture(True)
            raw_base = len(await sink.raw())
            base = await sink.count()
            starts: dict[str, float] = {}
            for i in range(requests):
                inp = ids.reset_input()
                if i == 0 and isinstance(conn, sqlite3.Connection):
                    conn.set_trace_callback(traced.append)
                starts[inp.email] = now()
                await app.service.request_password_reset(inp)
                if i == 0 and isinstance(conn, sqlite3.Connection):
                    conn.set_trace_callback(None)
            await sink.wait(base + requests, 60)
            accepted = (await sink.records(since=base)).by_rcpt()
            req_lat = [accepted[r] - s for r, s in starts.items() if r in accepted]
            tokens = tokens_from((await sink.raw(since=raw_base))[:requests])
            await sink.capture(False)
            consume_lat: list[float] = []
            consume_traced: list[str] = []
            for i, token in enumerate(tokens):
                if i == 0 and isinstance(conn, sqlite3.Connection):
                    conn.set_trace_callback(consume_traced.append)
                started = now()
                result = await app.service.consume_reset_token(token)
                consume_lat.append(now() - started)
                if i == 0 and isinstance(conn, sqlite3.Connection):
                    conn.set_trace_callback(None)
                assert result.consumed, result
            before = counts(db)
            # The purge in batches, with a writer committing beside it every 10 ms: its
            # longest wait is how long the purge can hold up a reset.
            waits: list[float] = []
            purging = anyio.Event()

            async def writer() -> None:
                while not purging.is_set():
                    started = time.perf_counter()
                    async with app.store.transaction() as tx:
                        probe = ContactEvent(email="probe@bench.example.com", event_type="probe", created_at=now_utc())
                        await tx.insert_event(probe)
                    waits.append(time.perf_counter() - started)
                    await anyio.sleep(0.01)

            t = time.perf_counter()
            async with anyio.create_task_group() as tg:
                tg.start_soon(writer)
                purged = await purge(app.store, datetime.now(UTC) - timedelta(days=30))
                purging.set()
            purge_s = time.perf_counter() - t
            after = counts(db)
        size_mb = round(sum(p.stat().st_size for p in data.glob("reset-mcp.db*")) / 2**20, 1)  # noqa: ASYNC240
        req = summary(req_lat)
        con = summary(consume_lat)
        return {
            "stored": n,
            "prefill_s": round(prefill_s, 1),
            "db_mb": size_mb,
            "request_p50_ms": req.get("p50_ms"),
            "request_p99_ms": req.get("p99_ms"),
            "consume_p50_ms": con.get("p50_ms"),
            "consume_p99_ms": con.get("p99_ms"),
            "statements_per_request": len(traced),
            "statements_per_consume": len(consume_traced),
            "full_scans": full_scans(db, traced + consume_traced),
            "purge_s": round(purge_s, 2),
            "purge_writer_max_wait_ms": round(max(waits, default=0.0) * 1000, 1),
            "purge_writer_commits": len(waits),
            "purged": purged,
            "rows_before_purge": before,
            "rows_after_purge": after,
        }


async def row(sink_port: int, sink: SinkClient, sizes: list[int], requests: int) -> dict[str, Any]:
    return {f"stored_{n}": await one_size(sink_port, sink, n, requests) for n in sizes}
