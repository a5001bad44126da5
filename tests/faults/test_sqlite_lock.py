"""Issue 21, item 4: another process holds the SQLite write lock (a CLI purge, a stuck
script); a real `reset-mcp serve --transport streamable-http` must keep answering reads
(the API key check, `tools/list`) at once, and a write must fail clearly at its deadline."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from reset_mcp.errors import STORE_BUSY
from tests.faults.serving import http_server, reset_call, server_env
from tests.faults.sink import FaultSink
from tests.httpserver import mcp_client

pytestmark = pytest.mark.slow
HOLD = 7.0  # seconds the other process keeps the write lock: longer than a write's 5 s deadline


@contextmanager
def write_lock_held(db: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process takes the database's write lock (BEGIN IMMEDIATE) and sits on it."""
    code = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "c.execute('ROLLBACK')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


async def test_reads_do_not_wait_for_another_processs_write_lock(tmp_path: Path, sink: FaultSink, log: Path) -> None:
    data = tmp_path / "data"
    env = server_env(data, sink.port)
    with http_server(env, log) as server:
        async with mcp_client(server.url, server.key) as client:
            assert not (await client.call_tool("request_password_reset", reset_call(0))).is_error
            reads: list[float] = []
            write: dict[str, object] = {}

            async def a_write() -> None:
                started = time.monotonic()
                result = await client.call_tool("request_password_reset", reset_call(1))
                write.update(elapsed=time.monotonic() - started, error=result.is_error, content=result.content)

            with write_lock_held(data / "reset-mcp.db", HOLD):
                held_since = time.monotonic()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(a_write)
                    while time.monotonic() - held_since < HOLD - 1.5:
                        started = time.monotonic()
                        async with mcp_client(server.url, server.key) as other:  # a new session: key checked
                            await other.list_tools()
                        await client.list_tools()
                        reads.append(time.monotonic() - started)
                        await anyio.sleep(0.2)
            after = await client.call_tool("request_password_reset", reset_call(2))
    print(
        f"while another process held the write lock: {len(reads)} reads, slowest {max(reads):.2f} s; "
        f"a write answered after {write['elapsed']:.1f} s (error={write['error']}): {write['content']}"
    )
    assert max(reads) < 1.0
    assert write["error"] is True and float(write["elapsed"]) < 5 + 2  # type: ignore[arg-type]
    assert STORE_BUSY in str(write["content"])  # "database busy", not "unavailable"
    assert not after.is_error, after.content  # the lock gone, writes work again


async def test_healthz_says_so_when_writes_fail_on_a_held_lock(tmp_path: Path, sink: FaultSink, log: Path) -> None:
    data = tmp_path / "data"
    with http_server(server_env(data, sink.port), log) as server:
        async with mcp_client(server.url, server.key) as client:
            with write_lock_held(data / "reset-mcp.db", HOLD):
                failed = await client.call_tool("request_password_reset", reset_call(0))  # waits out its deadline
                health = httpx.get(f"{server.url}/healthz", timeout=5)
            with anyio.fail_after(10):  # the lock gone, the worker's next write clears it
                while (after := httpx.get(f"{server.url}/healthz", timeout=5)).status_code != 200:
                    await anyio.sleep(0.2)
    print(f"/healthz after a write failed on the held lock: {health.status_code} {health.text[:200]}")
    assert failed.is_error
    assert health.status_code == 503 and health.json()["reason"].startswith("database busy")
    assert after.json() == {"status": "ok"}
