"""Row 2: `ResetService.request_password_reset` in process, until the sink accepted the message.

Sequential and at concurrency 8 on the stdlib asyncio loop, then concurrency 8 again on
uvloop (a dependency of reset-mcp, what `serve` runs on; a host application that embeds
the service picks its own loop): that line runs in a thread of its own with its own
event loop and app, while the bench's loop waits.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anyio

from bench.common import Identities, bench_settings, now, summary
from bench.sink import SinkClient
from reset_mcp.app import build_app


async def run_requests(app: Any, ids: Identities, n: int, concurrency: int) -> tuple[dict[str, float], float, int]:
    """n requests with `concurrency` workers; returns (recipient -> start time, t0, failures)."""
    starts: dict[str, float] = {}
    failures = 0
    remaining = n

    async def worker() -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            inp = ids.reset_input()
            starts[inp.email] = now()
            result = await app.service.request_password_reset(inp)
            if result.status != "sent":
                failures += 1

    t0 = now()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return starts, t0, failures


async def measure(sink: SinkClient, app: Any, tag: str, n: int, concurrency: int) -> dict[str, Any]:
    base = await sink.count()
    starts, t0, failures = await run_requests(app, Identities(tag), n, concurrency)
    delivered = await sink.wait(base + n, timeout=60)
    records = await sink.records(since=base)
    accepted = records.by_rcpt()
    lat = [accepted[r] - s for r, s in starts.items() if r in accepted]
    end = max(accepted.values()) if accepted else now()
    out = summary(lat, end - t0, n)
    out |= {
        "concurrency": concurrency,
        "delivered": len(accepted),
        "errors": failures + (n - len(accepted)),
        "all_delivered": delivered and len(accepted) == n,
        "latencies_ms": [round(v * 1000, 3) for v in lat],
    }
    return out


async def row(sink_port: int, sink: SinkClient, n: int, warmup: int = 50) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-inproc-") as tmp:
        settings = bench_settings(Path(tmp), sink_port)
        async with build_app(settings) as app:
            await run_requests(app, Identities("warm"), warmup, 1)
            await sink.wait(await sink.count(), 10)
            seq = await measure(sink, app, "seq", n, 1)
            c8 = await measure(sink, app, "c8", n, 8)
    on_uvloop = await anyio.to_thread.run_sync(_uvloop_c8, sink_port, sink, n, warmup)
    return {"sequential": seq, "concurrency_8": c8, "concurrency_8_uvloop": on_uvloop}


def _uvloop_c8(sink_port: int, sink: SinkClient, n: int, warmup: int) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="bench-inproc-uv-") as tmp:
            async with build_app(bench_settings(Path(tmp), sink_port)) as app:
                await run_requests(app, Identities("uvwarm"), warmup, 8)
                await sink.wait(await sink.count(), 10)
                return await measure(sink, app, "uv8", n, 8) | {"loop": "uvloop"}

    return anyio.run(main, backend_options={"use_uvloop": True})
