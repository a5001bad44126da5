"""Row 3: `python -m reset_mcp serve` over stdio, driven by the SDK client, one call at a time."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from bench.common import Identities, bench_env, now, server_pythonpath, summary
from bench.sink import SinkClient

ROOT = Path(__file__).resolve().parent.parent


def server_params(data_dir: Path, sink_port: int, **extra: str) -> StdioServerParameters:
    """`reset_mcp serve` on stdio; `extra` overrides RESET_MCP_* settings (the cpu row's memory backend)."""
    path = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": server_pythonpath(ROOT)}
    env = bench_env(data_dir, sink_port, **path, **extra)
    # cwd is the data dir's parent, not the repo: `-m` puts cwd first on sys.path, which
    # would shadow a PYTHONPATH naming another checkout to measure.
    return StdioServerParameters(
        command=sys.executable, args=["-m", "reset_mcp", "serve"], cwd=str(data_dir.parent), env=env
    )


async def calls(client: Client, ids: Identities, n: int) -> tuple[dict[str, float], list[float], int, float]:
    """n `request_password_reset` calls, one at a time: (recipient -> start, answered, errors, t0)."""
    starts: dict[str, float] = {}
    answered: list[float] = []
    errors = 0
    t0 = now()
    for _ in range(n):
        args = ids.tool_args()
        started = now()
        starts[args["email"]] = started
        result = await client.call_tool("request_password_reset", args)
        answered.append(now() - started)
        if result.is_error or (result.structured_content or {}).get("status") != "sent":
            errors += 1
    return starts, answered, errors, t0


async def warm(client: Client, warmup: int) -> None:
    ids = Identities("stdio-warm")
    for _ in range(warmup):
        await client.call_tool("request_password_reset", ids.tool_args())


async def row(sink_port: int, sink: SinkClient, n: int, warmup: int = 30) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-stdio-") as tmp:
        async with Client(server_params(Path(tmp) / "data", sink_port)) as client:
            await warm(client, warmup)
            await sink.wait(await sink.count(), 10)
            base = await sink.count()
            starts, answered, errors, t0 = await calls(client, Identities("stdio"), n)
            delivered = await sink.wait(base + n, timeout=60)
            records = await sink.records(since=base)
    accepted = records.by_rcpt()
    lat = [accepted[r] - s for r, s in starts.items() if r in accepted]
    end = max(accepted.values()) if accepted else now()
    out = summary(lat, end - t0, n)
    answer = summary(answered)
    out |= {
        "answered_p50_ms": answer.get("p50_ms"),
        "answered_p99_ms": answer.get("p99_ms"),
        "delivered": len(accepted),
        "errors": errors + (n - len(accepted)),
        "all_delivered": delivered and len(accepted) == n,
        "latencies_ms": [round(v * 1000, 3) for v in lat],
    }
    return out
