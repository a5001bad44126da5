"""Issue 21's row: a slow SMTP server, every delivery setting at its default.

    python -m bench.slow_smtp                      # 600 requests, 200 ms a message, concurrency 32
    python -m bench.slow_smtp --n 300 --delay 0.2 --concurrency 32

`reset-mcp serve --transport streamable-http` (one process, SQLite, 4 SMTP connections,
60 s leases, 3 s send wait) against the benchmark sink answering each message's DATA
after `--delay` seconds. Reports resets per second (until the sink accepted the last
message), the tool call's latency (p50, p99, max), what the calls answered (`sent`, or
`queued` when the send wait ran out first), and the messages the sink accepted more than
once by Message-ID (must be 0), with the outbox rows' final statuses.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

from bench.common import Identities, now, summary
from bench.http_rows import HttpServer
from bench.httpclient import HttpError, call_tool
from bench.sink import SinkClient, SinkProcess


async def row(server: HttpServer, sink: SinkClient, n: int, concurrency: int, delay: float) -> dict[str, Any]:
    ids = Identities("slow")
    answers: Counter[str] = Counter()
    latencies: list[float] = []
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        conn = server.connection()
        try:
            while remaining > 0:
                remaining -= 1
                started = now()
                try:
                    result = await call_tool(conn, "request_password_reset", ids.tool_args())
                    answers[str(result.get("status"))] += 1
                except HttpError as exc:
                    answers[f"error: {exc}"[:80]] += 1
                latencies.append(now() - started)
        finally:
            await conn.close()

    base = await sink.count()
    t0 = now()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    answered = now() - t0
    all_in = await sink.wait(base + n, timeout=300)  # the queued ones are finished by the worker
    # A second attempt on a row (a duplicate) may still be on its way, even after every row
    # is final: wait until none is pending or sending and the sink heard nothing new for
    # two of its answers' delays.
    quiet, seen = max(2.0, 2 * delay + 1), -1
    since = now()
    for _ in range(1200):  # at most 600 s
        count = await sink.count()
        if count != seen:
            seen, since = count, now()
        busy = any(server.outbox_counts().get(status, 0) for status in ("pending", "sending"))
        if not busy and now() - since >= quiet:
            break
        await anyio.sleep(0.5)
    records = await sink.records(since=base)
    stats = await sink.stats()
    last = records.times[min(n, len(records.times)) - 1] if records.times else None  # the n-th, not a late copy
    out = summary(latencies, (last - t0) if last is not None else None, n)
    return out | {
        "concurrency": concurrency,
        "answered_in_s": round(answered, 2),
        "answers": dict(answers),
        "accepted_at_sink": len(records.ids),
        "unique_at_sink": len(set(records.ids)),
        "duplicates": stats["duplicates"],
        "all_delivered": all_in,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="reset-mcp-slow-smtp-") as tmp, SinkProcess(args.delay) as sink:
        data = Path(tmp) / "data"
        data.mkdir()
        with HttpServer(data, sink.port, Path(tmp) / "serve.log") as server:
            result = await row(server, sink.client(), args.n, args.concurrency, args.delay)
        result["outbox"] = server.outbox_counts()  # read after the server stopped
    return {"delay_s": args.delay, **result}


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    result = anyio.run(main, parser.parse_args())
    print(json.dumps(result, indent=1))
    line = (
        f"slow SMTP ({result['delay_s'] * 1000:.0f} ms a message), c{result['concurrency']}: "
        f"{result.get('per_s')} resets/s; call p50 {result.get('p50_ms')} ms, p99 {result.get('p99_ms')} ms, "
        f"max {result.get('max_ms')} ms; answers {result['answers']}; duplicates {result['duplicates']}; "
        f"outbox {result['outbox']}"
    )
    print(line)


if __name__ == "__main__":
    cli()
