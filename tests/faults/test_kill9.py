"""Issue 21, item 9: kill -9 of a serving process while emails are in flight, then a new
process on the same data. Nothing is lost; what arrives twice is the at-least-once the
docs must admit (the receiver deduplicates by Message-ID), and the test prints its rate."""

from __future__ import annotations

import os
import signal
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.faults.serving import reset_call, server_env, stdio_server
from tests.faults.sink import FaultSink
from tests.faults.tally import Tally, sqlite_outbox
from tests.faults.test_smtp_faults import settle

pytestmark = pytest.mark.slow


async def test_kill_9_mid_send_then_a_restart_loses_nothing(tmp_path: Path, sink: FaultSink, log: Path) -> None:
    n, data = 16, tmp_path / "data"
    sink.set("delay", delay=0.5)  # several messages are on the wire at any moment
    env = server_env(data, sink.port, RESET_MCP_DELIVERY_LEASE_SECONDS="2")
    first = stdio_server(env, log)
    client, pid = await first.__aenter__()
    try:
        async with anyio.create_task_group() as tg:

            async def one(i: int) -> None:
                with suppress(Exception):  # the process dies under some of these calls
                    await client.call_tool("request_password_reset", reset_call(i))

            for i in range(n):
                tg.start_soon(one, i)
            with anyio.fail_after(30):
                while len(sink.records()) < 6:
                    await anyio.sleep(0.02)
            os.kill(pid, signal.SIGKILL)
            tg.cancel_scope.cancel()
    finally:
        with suppress(Exception):
            await first.__aexit__(None, None, None)
    at_kill = sqlite_outbox(data / "reset-mcp.db", "password_reset")
    sink.set("accept")
    async with stdio_server(env, log):  # a new process on the same data dir
        rows: list[dict[str, Any]] = await settle(data / "reset-mcp.db", sink)
    resets = [r for r in rows if r["kind"] == "password_reset"]
    tally = Tally.of([r["message_id"] for r in resets], sink.records())
    print(
        f"kill -9 with {sum(r['status'] == 'sending' for r in at_kill)} of {len(at_kill)} rows sending: {tally.line()}"
    )
    assert len(resets) == len(at_kill) >= 6
    assert tally.lost == 0 and all(r["status"] == "sent" for r in resets)
