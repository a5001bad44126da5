"""Delivery faults with real processes: `python -m reset_mcp serve` over stdio (SDK client)
against a real SMTP server on 127.0.0.1 that is down, hung, killed or refusing.

- 100 resets while the SMTP server is down: all `queued`; it comes up: all 100 arrive,
  each exactly once by Message-ID.
- SIGKILL: rows queued while the SMTP server is down, some of them caught mid-delivery
  (`sending`, against a server that accepts TCP and never answers) when the process is
  killed with SIGKILL; a new process on the same data dir delivers every one exactly once.
- A permanent rejection (550) ends `failed`, and the status tool shows the server's reason.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing, suppress
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import CHROME_UA, SECRET
from tests.smtpd_sink import HOST, SmtpSink, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
# `exec` keeps the pid, so the file names the server process itself, not a wrapper.
WRAPPER = 'echo $$ > "$RESET_MCP_TEST_PIDFILE"; exec "$0" "$@"'


def serve_env(data_dir: Path, smtp_port: int, **extra: str) -> dict[str, str]:
    env = {
        "PYTHONPATH": str(REPO),
        "RESET_MCP_DATA_DIR": str(data_dir),
        "RESET_MCP_SECRET": SECRET,
        "RESET_MCP_FROM_ADDRESS": "auth@acme.test",
        "RESET_MCP_EMAIL_BACKEND": "smtp",
        "RESET_MCP_SMTP_HOST": HOST,
        "RESET_MCP_SMTP_PORT": str(smtp_port),
        "RESET_MCP_SMTP_TLS": "none",
        "RESET_MCP_SMTP_TIMEOUT_SECONDS": "5",
        "RESET_MCP_WORKER_POLL_SECONDS": "0.2",
        "RESET_MCP_DELIVERY_BACKOFF_SECONDS": "0.5",
        "RESET_MCP_DELIVERY_BACKOFF_MAX_SECONDS": "2",
        "RESET_MCP_DELIVERY_MAX_ATTEMPTS": "50",  # the server stays down longer than 8 short tries
        "RESET_MCP_RATE_LIMIT_ACCOUNT_PER_HOUR": "1000",
        "RESET_MCP_RATE_LIMIT_IP_PER_HOUR": "100000",
        "RESET_MCP_CALLER_SENDS_PER_HOUR": "100000",
        "RESET_MCP_LOG_LEVEL": "WARNING",
        "RESET_MCP_TEST_PIDFILE": str(data_dir.parent / f"serve-{time.monotonic_ns()}.pid"),
    }
    env.update(extra)
    return env


@asynccontextmanager
async def serve(env: dict[str, str], log: Path) -> AsyncIterator[tuple[Client, int]]:
    """A `reset-mcp serve` subprocess and an SDK client on its stdio; yields (client, pid)."""
    params = StdioServerParameters(
        command="/bin/sh", args=["-c", WRAPPER, sys.executable, "-m", "reset_mcp", "serve"], env=env, cwd=str(REPO)
    )
    pidfile = Path(env["RESET_MCP_TEST_PIDFILE"])
    with open(log, "a") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=30) as client:
            yield client, int(pidfile.read_text())


def reset_call(i: int) -> dict[str, Any]:
    return {
        "email": f"user{i}@example.com",
        "user_id": f"u-{i}",
        "ip": "198.51.100.7",
        "user_agent": CHROME_UA,
    }


def outbox(data_dir: Path) -> list[dict[str, Any]]:
    """Every password_reset row (message_id, status, recipient, attempts, lease_until), read beside the server."""
    with closing(sqlite3.connect(data_dir / "reset-mcp.db", timeout=10)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT id, message_id, status, recipient, attempts, lease_until FROM outbox WHERE kind = 'password_reset'"
        ).fetchall()
    return [dict(r) for r in rows]


async def wait_until_all_sent(data_dir: Path, sink: SmtpSink, n: int, timeout: float = 30) -> None:
    with anyio.fail_after(timeout):
        while True:
            rows = outbox(data_dir)
            if len(sink.raw) >= n and len(rows) == n and all(r["status"] == "sent" for r in rows):
                return
            await anyio.sleep(0.1)


def assert_each_delivered_once(data_dir: Path, sink: SmtpSink, n: int) -> None:
    rows = outbox(data_dir)
    ids = [m["Message-ID"] for m in sink.messages]
    assert len(ids) == n and len(set(ids)) == n, "a message was lost or delivered twice"
    assert set(ids) == {r["message_id"] for r in rows}
    by_id = {m["Message-ID"]: m["To"] for m in sink.messages}
    assert all(by_id[r["message_id"]] == r["recipient"] for r in rows)
    assert sorted(rcpt for _, rcpts in sink.envelopes for rcpt in rcpts) == sorted(r["recipient"] for r in rows)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "serve.log"
    yield path
    # Visible with -rA or on failure: what the servers said on stderr.
    if path.exists():
        print(path.read_text()[-4000:])


async def test_smtp_down_during_100_requests_then_up_delivers_each_exactly_once(data_dir: Path, log: Path) -> None:
    n = 100
    port = free_port()  # nothing listens: connections are refused
    sink = SmtpSink(port=port)
    try:
        async with serve(serve_env(data_dir, port), log) as (client, _):
            answers = []
            for i in range(n):
                result = await client.call_tool("request_password_reset", reset_call(i))
                assert not result.is_error, result.content
                answers.append(result.structured_content)
            assert {a["status"] for a in answers} == {"queued"}
            assert {a["delivery"]["status"] for a in answers} == {"pending"}
            assert all("connect" in a["delivery"]["error"].lower() for a in answers)
            assert len({a["request_id"] for a in answers}) == n
            shown = (
                await client.call_tool("get_delivery_status", {"request_id": answers[0]["request_id"]})
            ).structured_content
            assert shown["status"] == "queued" and shown["deliveries"][0]["status"] == "pending"
            assert sink.raw == []

            sink.start()  # the SMTP server comes up on the port the server was told
            await wait_until_all_sent(data_dir, sink, n)
            await anyio.sleep(0.5)  # a duplicate would show up now
            assert_each_delivered_once(data_dir, sink, n)
            for answer in (answers[0], answers[-1]):
                shown = (
                    await client.call_tool("get_delivery_status", {"request_id": answer["request_id"]})
                ).structured_content
                assert shown["status"] == "sent" and shown["deliveries"][0]["sent_at"]
            assert sink.connections <= 4  # the pool, reused (size 4)
    finally:
        sink.stop()


async def test_sigkill_while_rows_are_queued_and_in_flight_then_restart_delivers_all_once(
    data_dir: Path, log: Path
) -> None:
    n = 30
    port = free_port()
    env = serve_env(
        data_dir,
        port,
        RESET_MCP_DELIVERY_LEASE_SECONDS="1",
        RESET_MCP_SMTP_TIMEOUT_SECONDS="60",  # hung connections stay hung until the kill
    )
    first = serve(env, log)
    client, pid = await first.__aenter__()
    try:
        for i in range(n):
            result = await client.call_tool("request_password_reset", reset_call(i))
            assert result.structured_content["status"] == "queued", result.content
        # The SMTP host now accepts TCP and never answers: the worker's next deliveries
        # hang mid-flight, their rows `sending` and leased to this process.
        hung: list[Any] = []

        async def hang(stream: Any) -> None:
            hung.append(stream)
            async with stream:
                await anyio.sleep_forever()

        tarpit = await anyio.create_tcp_listener(local_host=HOST, local_port=port)
        async with tarpit, anyio.create_task_group() as tg:
            tg.start_soon(tarpit.serve, hang)
            with anyio.fail_after(15):
                while not hung:
                    await anyio.sleep(0.05)
            await anyio.sleep(0.3)  # let the worker's other connections arrive too
            os.kill(pid, signal.SIGKILL)
            in_flight = len(hung)
            tg.cancel_scope.cancel()
    finally:
        with suppress(Exception):  # the client sees its server vanish; that is the point
            await first.__aexit__(None, None, None)
    at_kill = [r["status"] for r in outbox(data_dir)]
    assert len(at_kill) == n and set(at_kill) <= {"sending", "pending"}
    # Every hung connection is a delivery the kill caught mid-flight (refused ones may be back to pending).
    assert at_kill.count("sending") >= in_flight >= 1

    with SmtpSink(port=port) as sink:
        async with serve(env, log) as (client, _):  # same data dir, a new process
            await wait_until_all_sent(data_dir, sink, n)
            await anyio.sleep(1.5)  # longer than the lease: a double take-over would show now
            assert_each_delivered_once(data_dir, sink, n)
            assert all(r["attempts"] >= 2 for r in outbox(data_dir))
            result = await client.call_tool("list_pending_sends", {})
            assert not result.is_error


async def test_permanent_rejection_ends_failed_with_the_servers_reason(data_dir: Path, log: Path) -> None:
    reply = "550 5.1.1 <user0@example.com>: Recipient address rejected: User unknown"
    with SmtpSink() as sink:
        sink.refuse(reply, at="RCPT")
        async with serve(serve_env(data_dir, sink.port), log) as (client, _):
            out = (await client.call_tool("request_password_reset", reset_call(0))).structured_content
            assert out["status"] == "failed" and out["delivery"]["status"] == "failed"
            await anyio.sleep(0.6)  # several worker polls: a failed row is never retried
            shown = (
                await client.call_tool("get_delivery_status", {"request_id": out["request_id"]})
            ).structured_content
    assert shown["status"] == "failed"
    assert "550 5.1.1" in shown["reason"] and "Recipient address rejected: User unknown" in shown["reason"]
    [delivery] = shown["deliveries"]
    assert delivery["status"] == "failed" and delivery["attempts"] == 1 and delivery["next_attempt_at"] is None
    assert "Recipient address rejected" in delivery["last_error"]
    assert sink.raw == [] and sink.connections == 1
    [row] = outbox(data_dir)
    assert (row["status"], row["recipient"], row["attempts"]) == ("failed", "user0@example.com", 1)
