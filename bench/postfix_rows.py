"""Django and reset-mcp against Postfix's `smtp-sink` (see `bench/postfix_sink.py`).

The same three measurements the bench's own sink takes for the ratios of issue 24:
Django's `PasswordResetForm.save()` one at a time, reset-mcp over stdio one call at a
time, and reset-mcp over streamable HTTP at concurrency 32 on one worker process.
Resets per second run from the first start until smtp-sink had counted the run's last
message; latency is the client's (no per-message accept time exists here); delivery is
checked per recipient in smtp-sink's own dump: every recipient exactly once.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mcp import Client

from bench import django_row, stdio_row
from bench.common import Identities, now, summary
from bench.http_rows import HttpServer, drive
from bench.postfix_sink import PostfixSink

SINK = "postfix smtp-sink"


def settle(
    pf: PostfixSink, before: set[str], base: int, starts: dict[str, float], latencies: Sequence[float], t0: float
) -> dict[str, Any]:
    """A run's figures once smtp-sink has (or has not) counted every message of it."""
    n = len(starts)
    got = pf.recipients_since(before)
    wanted = {r.lower() for r in starts}
    end = pf.counted_at(base + n)
    out = summary(latencies, (end or now()) - t0, n)
    out |= {
        "sink": SINK,
        "latency_is": "client",
        "delivered": sum(1 for r in wanted if got[r] >= 1),
        "delivered_twice": sum(1 for r in wanted if got[r] > 1),
        # Each wanted recipient exactly once, and nothing else counted in the window.
        "all_delivered": end is not None and all(got[r] == 1 for r in wanted) and pf.count() == base + n,
        "latencies_ms": [round(v * 1000, 3) for v in latencies],
    }
    return out


async def django(pf: PostfixSink, n: int, workdir: Path, warmup: int = 30) -> dict[str, Any]:
    """`workdir` must be new: the peer creates its users in a database there."""
    django_row.write_templates(workdir)  # creates workdir too
    before, base = pf.dumped(), pf.count()
    out = await django_row.run_peer(pf.port, n, workdir, warmup)
    await pf.wait(base + warmup + n, timeout=60)
    # The peer saves its warm-up users first, one at a time: the measured ones follow them.
    result = settle(pf, before, base + warmup, out["starts"], out["durations"], out["t0"])
    return result | {"django_version": out["django"]}


async def stdio(pf: PostfixSink, n: int, warmup: int = 30) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-stdio-pf-") as tmp:
        async with Client(stdio_row.server_params(Path(tmp) / "data", pf.port)) as client:
            first = pf.count()
            await stdio_row.warm(client, warmup)
            # Each call answers once smtp-sink took its message, but its counter is read
            # by a thread: wait for the warm-up's messages so none is counted as the run's.
            await pf.wait(first + warmup, 10)
            before, base = pf.dumped(), first + warmup
            starts, answered, errors, t0 = await stdio_row.calls(client, Identities("stdio-pf"), n)
            await pf.wait(base + n, timeout=60)
    return settle(pf, before, base, starts, answered, t0) | {"errors": errors}


async def http_one_worker(pf: PostfixSink, n: int, workdir: Path, concurrency: int = 32) -> dict[str, Any]:
    with HttpServer(workdir / "http-pf-data", pf.port, workdir / "http-pf-server.log") as server:
        first = pf.count()
        await drive(server, "http-pf-warm", 50, 4)
        await pf.wait(first + 50, 10)  # as in `stdio`: the warm-up's messages counted first
        before, base = pf.dumped(), first + 50
        starts, answered, errors, t0 = await drive(server, "http-pf", n, concurrency)
        await pf.wait(base + len(starts), timeout=120)
    out = settle(pf, before, base, starts, answered, t0)
    return out | {"concurrency": concurrency, "workers": 1, "errors": len(errors), "error_samples": errors[:3]}
