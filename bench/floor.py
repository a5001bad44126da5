"""Row 1, the floor: what the cheapest possible reset would still pay, per operation."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosmtplib
import aiosqlite

from bench.common import SECRET
from reset_mcp.tokens import TokenClaims, TokenSigner


def _per_op(fn: Any, n: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def jwt_costs(n: int) -> dict[str, float]:
    signer = TokenSigner(SECRET)
    now = datetime.now(UTC)
    claims = TokenClaims(
        jti=signer.jti_for("req_bench"),
        user_id="u-1",
        email="alice@example.com",
        issued_at=now,
        expires_at=now + timedelta(minutes=15),
        kid=signer.kid,
    )
    token = signer.mint(claims)
    assert signer.decode(token, now).failure is None
    return {
        "jwt_sign_us": round(_per_op(lambda: signer.mint(claims), n), 2),
        "jwt_verify_us": round(_per_op(lambda: signer.decode(token, now), n), 2),
    }


async def sqlite_commit_cost(n: int) -> dict[str, float]:
    """One INSERT + COMMIT in WAL mode through aiosqlite (what an async app pays per commit),
    and the same on a plain sqlite3 connection (no thread hop)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        db = Path(tmp) / "floor.db"
        async with aiosqlite.connect(db, isolation_level=None) as conn:
            for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"):
                await conn.execute(pragma)
            await conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, at REAL NOT NULL)")
            t = time.perf_counter()
            for i in range(n):
                await conn.execute("BEGIN IMMEDIATE")
                await conn.execute("INSERT INTO t (v, at) VALUES (?, ?)", (f"value-{i}", time.time()))
                await conn.execute("COMMIT")
            out["sqlite_commit_aiosqlite_us"] = round((time.perf_counter() - t) / n * 1e6, 2)
        conn2 = sqlite3.connect(db, isolation_level=None)
        conn2.execute("PRAGMA synchronous=NORMAL")

        def commit() -> None:
            conn2.execute("BEGIN IMMEDIATE")
            conn2.execute("INSERT INTO t (v, at) VALUES (?, ?)", ("value", time.time()))
            conn2.execute("COMMIT")

        out["sqlite_commit_inline_us"] = round(_per_op(commit, n), 2)
        conn2.close()
    return out


async def smtp_cost(sink_port: int, n: int) -> dict[str, float]:
    """One SMTP transaction (MAIL, RCPT, DATA) on a reused connection, a ~10 kB message."""
    body = b"Subject: floor\r\nMessage-ID: <floor-%d@bench>\r\n\r\n" + (b"z" * 76 + b"\r\n") * 130
    conn = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink_port, use_tls=False, start_tls=False)
    await conn.connect()
    try:
        for i in range(10):
            await conn.sendmail("floor@bench.example.com", [f"floor-warm-{i}@bench.example.com"], body % i)
        t = time.perf_counter()
        for i in range(n):
            await conn.sendmail("floor@bench.example.com", [f"floor-{i}@bench.example.com"], body % (i + 10))
        reused = (time.perf_counter() - t) / n * 1e6
    finally:
        await conn.quit()
    t = time.perf_counter()
    m = max(n // 5, 5)
    for i in range(m):
        fresh = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink_port, use_tls=False, start_tls=False)
        await fresh.connect()
        await fresh.sendmail("floor@bench.example.com", [f"floor-new-{i}@bench.example.com"], body % (i + n + 10))
        await fresh.quit()
    new_conn = (time.perf_counter() - t) / m * 1e6
    return {"smtp_send_reused_us": round(reused, 1), "smtp_send_new_connection_us": round(new_conn, 1)}


async def row(sink_port: int, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out |= jwt_costs(n * 10)
    out |= await sqlite_commit_cost(n)
    out |= await smtp_cost(sink_port, n)
    return out
