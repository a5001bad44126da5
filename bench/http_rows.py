"""Rows 4 and 7: `reset-mcp serve --transport streamable-http` as its own process.

Row 4: resets per second at concurrency 1, 8 and 32, counted until the sink accepted the
last message (every message delivered), and verify + consume pairs per second.
Row 7 (issue 10, item 4): 5,000 requests at concurrency 50, zero errors, every message
delivered exactly once; and a soak that samples the server's RSS every 10 seconds.
The server process itself is `bench.http_server.HttpServer` (re-exported here).
"""

from __future__ import annotations

import email
import re
from collections import Counter
from email import policy
from pathlib import Path
from typing import Any, Protocol

import anyio

from bench.common import Identities, now, summary
from bench.http_server import HttpServer, free_port, rss_kb
from bench.httpclient import Connection, HttpError, call_tool
from bench.sink import SinkClient

__all__ = ["HttpServer", "drive", "free_port", "http_available", "load", "measured", "row4", "rss_kb", "soak"]
TOKEN_RE = re.compile(r"token=([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)")


def http_available() -> str | None:
    """None when the HTTP transport is importable, else why not."""
    try:
        from reset_mcp.server.http.app import build_http_app  # noqa: F401
    except ImportError as exc:
        return f"reset_mcp.server.http.app is not importable: {exc}"
    return None


class Serving(Protocol):
    """What `drive` needs of a server: a new connection to it (`HttpServer`, the SDK floor's)."""

    def connection(self) -> Connection: ...


async def drive(
    server: Serving, tag: str, n: int, concurrency: int, *, deadline: float | None = None
) -> tuple[dict[str, float], list[float], list[str], float]:
    """n reset requests (or until `deadline`) over `concurrency` connections.

    Returns (recipient -> start time, answered latencies, errors, t0)."""
    ids = Identities(tag)
    starts: dict[str, float] = {}
    answered: list[float] = []
    errors: list[str] = []
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        conn = server.connection()
        try:
            while remaining > 0 and (deadline is None or now() < deadline):
                remaining -= 1
                args = ids.tool_args()
                started = now()
                starts[args["email"]] = started
                try:
                    result = await call_tool(conn, "request_password_reset", args)
                    if result.get("status") != "sent":
                        errors.append(f"status {result.get('status')}: {result.get('reason')}")
                except HttpError as exc:
                    errors.append(str(exc))
                answered.append(now() - started)
        finally:
            await conn.close()

    t0 = now()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return starts, answered, errors, t0


async def measured(server: HttpServer, sink: SinkClient, tag: str, n: int, concurrency: int) -> dict[str, Any]:
    base = await sink.count()
    starts, answered, errors, t0 = await drive(server, tag, n, concurrency)
    delivered = await sink.wait(base + len(starts), timeout=120)
    accepted = (await sink.records(since=base)).by_rcpt()
    lat = [accepted[r] - s for r, s in starts.items() if r in accepted]
    end = max(accepted.values()) if accepted else now()
    out = summary(lat, end - t0, len(starts))
    out |= {
        "concurrency": concurrency,
        "answered_p50_ms": summary(answered).get("p50_ms"),
        "delivered": len(accepted),
        "errors": len(errors) + (len(starts) - len(accepted)),
        "error_samples": errors[:3],
        "all_delivered": delivered and len(accepted) == len(starts),
        "latencies_ms": [round(v * 1000, 3) for v in lat],
    }
    return out


def tokens_from(raw: list[bytes]) -> list[str]:
    out = []
    for data in raw:
        msg = email.message_from_bytes(data, policy=policy.default)
        part = msg.get_body(("plain",))
        if part is not None and (m := TOKEN_RE.search(part.get_content())):
            out.append(m.group(1))
    return out


async def verify_consume(server: HttpServer, sink: SinkClient, n: int, concurrency: int) -> dict[str, Any]:
    """Mint n tokens (captured at the sink), then verify + consume each over MCP tools."""
    await sink.capture(True)
    raw_base = len(await sink.raw())
    base = await sink.count()
    await drive(server, "vc", n, 8)
    await sink.wait(base + n, timeout=120)
    tokens = tokens_from((await sink.raw(since=raw_base))[:n])
    await sink.capture(False)
    errors: list[str] = []
    pending = list(tokens)
    lat: list[float] = []

    async def worker() -> None:
        conn = server.connection()
        try:
            while pending:
                token = pending.pop()
                started = now()
                try:
                    verified = await call_tool(conn, "verify_reset_token", {"token": token})
                    consumed = await call_tool(conn, "consume_reset_token", {"token": token})
                    if not verified.get("valid") or not consumed.get("consumed"):
                        errors.append(f"verify {verified.get('valid')} consume {consumed.get('consumed')}")
                except HttpError as exc:
                    errors.append(str(exc))
                lat.append(now() - started)
        finally:
            await conn.close()

    notices_base = await sink.count()
    t0 = now()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    elapsed = now() - t0
    notices = await sink.wait(notices_base + len(tokens), timeout=60)
    out = summary(lat, elapsed, len(tokens))
    out |= {
        "concurrency": concurrency,
        "errors": len(errors),
        "error_samples": errors[:3],
        "notices_delivered": notices,
    }
    return out


async def row4(sink_port: int, sink: SinkClient, n: int, workdir: Path, vc_n: int, workers: int = 1) -> dict[str, Any]:
    """Row 4 on `serve --workers <workers>` (one per core: how the server is run on this
    machine), then concurrency 32 again on a single worker process, for comparison."""
    out: dict[str, Any] = {"workers": workers}
    with HttpServer(workdir / "http-data", sink_port, workdir / "http-server.log", workers=workers) as server:
        await drive(server, "http-warm", 50, 4)
        for c in (1, 8, 32):
            out[f"concurrency_{c}"] = await measured(server, sink, f"http-c{c}", n, c)
        out["verify_consume"] = await verify_consume(server, sink, vc_n, 8)
        out["server_rss_mb"] = round(rss_kb(server.pid) / 1024, 1)
    if workers > 1:
        with HttpServer(workdir / "http1-data", sink_port, workdir / "http1-server.log") as single:
            await drive(single, "http1-warm", 50, 4)
            out["one_worker_concurrency_32"] = await measured(single, sink, "http1-c32", n, 32)
    return out


async def load(
    sink_port: int, sink: SinkClient, workdir: Path, n: int = 5000, concurrency: int = 50, workers: int = 1
) -> dict[str, Any]:
    server = HttpServer(workdir / "load-data", sink_port, workdir / "load-server.log", workers=workers)
    with server:
        base = await sink.count()
        stats_before = await sink.stats()
        result = await measured(server, sink, "load", n, concurrency)
        records = await sink.records(since=base)
        stats_after = await sink.stats()
    per_rcpt = Counter(records.rcpts)
    result |= {
        "workers": workers,
        "requests": n,
        "messages_at_sink": len(records.ids),
        "unique_message_ids": len(set(records.ids)),
        "recipients_more_than_once": sum(1 for v in per_rcpt.values() if v > 1),
        "duplicates_at_sink": stats_after["duplicates"] - stats_before["duplicates"],
        "outbox_after_stop": server.outbox_counts(),
    }
    result["exactly_once"] = (
        result["errors"] == 0
        and len(records.ids) == n
        and len(set(records.ids)) == n
        and result["recipients_more_than_once"] == 0
        and result["outbox_after_stop"] == {"sent": n}
    )
    return result


async def soak(
    sink_port: int, sink: SinkClient, workdir: Path, minutes: float, concurrency: int = 8, every: float = 10.0
) -> dict[str, Any]:
    server = HttpServer(workdir / "soak-data", sink_port, workdir / "soak-server.log")
    samples: list[tuple[float, int]] = []
    with server:
        base = await sink.count()
        t0 = now()
        deadline = t0 + minutes * 60
        done = anyio.Event()

        async def sampler() -> None:
            while not done.is_set():
                samples.append((round(now() - t0, 1), rss_kb(server.pid)))
                with anyio.move_on_after(every):
                    await done.wait()
            samples.append((round(now() - t0, 1), rss_kb(server.pid)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler)
            starts, _, errors, _ = await drive(server, "soak", 10**9, concurrency, deadline=deadline)
            done.set()
        delivered = await sink.wait(base + len(starts), timeout=120)
        count = await sink.count() - base
        db_files = server.db_files_mb()  # while running: the WAL as the server left it
    rss = [kb for _, kb in samples]
    half = rss[len(rss) // 2 :] or rss
    # Growth over the second half (after warm-up), and a least-squares slope over it.
    xs = [t for t, _ in samples[len(samples) // 2 :]] or [0.0]
    slope = 0.0
    if len(half) > 1:
        mx, my = sum(xs) / len(xs), sum(half) / len(half)
        den = sum((x - mx) ** 2 for x in xs) or 1.0
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, half, strict=True)) / den * 60 / 1024
    return {
        "minutes": minutes,
        "concurrency": concurrency,
        "requests": len(starts),
        "per_s": round(len(starts) / (minutes * 60), 1),
        "errors": len(errors),
        "delivered": count,
        "all_delivered": delivered and count == len(starts),
        "rss_samples_kb": samples,
        "rss_first_mb": round(rss[0] / 1024, 1) if rss else None,
        "rss_max_mb": round(max(rss) / 1024, 1) if rss else None,
        "rss_last_mb": round(rss[-1] / 1024, 1) if rss else None,
        "rss_second_half_growth_mb": round((half[-1] - half[0]) / 1024, 2) if half else None,
        "rss_second_half_slope_mb_per_min": round(slope, 3),
        "db_files_mb": db_files,
    }
