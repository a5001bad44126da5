"""Issue 21, item 5 and the "database killed mid-load" trial: a real
`reset-mcp serve --transport streamable-http` on a PostgreSQL cluster of the test's own,
which the test kills (SIGKILL to every PostgreSQL process) and starts again."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
from mcp import MCPError

from reset_mcp.errors import STORE_UNAVAILABLE
from tests.faults.pg_cluster import PgCluster
from tests.faults.serving import http_server, reset_call, server_env
from tests.faults.sink import FaultSink
from tests.faults.tally import Tally
from tests.httpserver import mcp_client

pytestmark = pytest.mark.slow  # its own cluster: not the shared server the `postgres` mark means


async def outbox(url: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT id, send_id, message_id, status, attempts FROM outbox WHERE kind = 'password_reset'"
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def settled(url: str, sink: FaultSink, timeout: float = 60, quiet: float = 2.0) -> list[dict[str, Any]]:
    seen, since = -1, time.monotonic()
    with anyio.fail_after(timeout):
        while True:
            rows = await outbox(url)
            count = len(sink.records())
            if count != seen:
                seen, since = count, time.monotonic()
            if not any(r["status"] in ("pending", "sending") for r in rows) and time.monotonic() - since >= quiet:
                return rows
            await anyio.sleep(0.2)


def leaf(exc: BaseException) -> str:
    """The one error inside the client's exception groups, as the client shows it."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def env_on(cluster: PgCluster, tmp_path: Path, sink: FaultSink, **extra: str) -> dict[str, str]:
    url = cluster.create_database("reset")
    return server_env(
        tmp_path / "data", sink.port, RESET_MCP_DATABASE_URL=url, RESET_MCP_DB_POOL_TIMEOUT_SECONDS="2", **extra
    )


async def test_requests_through_a_database_killed_and_restarted_lose_nothing(
    tmp_path: Path, sink: FaultSink, pg_cluster: PgCluster, log: Path
) -> None:
    env = env_on(pg_cluster, tmp_path, sink, RESET_MCP_DELIVERY_LEASE_SECONDS="3")
    outcomes: Counter[str] = Counter()
    accepted: list[tuple[float, str]] = []
    counter = iter(range(10_000))
    with http_server(env, log) as server:
        started = time.monotonic()
        down, up = started + 2.0, started + 3.5  # killed 2 s into the load, back 1.5 s later

        async def client_loop() -> None:
            while time.monotonic() < started + 7.0:
                i = next(counter)
                try:
                    async with mcp_client(server.url, server.key) as client:
                        result = await client.call_tool("request_password_reset", reset_call(i))
                except Exception as exc:  # the key check could not read the database: a 503
                    outcomes[f"refused: {leaf(exc)}"] += 1
                    await anyio.sleep(0.05)
                    continue
                if result.is_error:
                    outcomes["tool error"] += 1
                    continue
                outcomes[result.structured_content["status"]] += 1
                accepted.append((time.monotonic(), result.structured_content["request_id"]))

        async def outage() -> None:
            await anyio.sleep_until(down)
            pg_cluster.kill()  # every PostgreSQL process, SIGKILL
            await anyio.sleep_until(up)
            pg_cluster.start()

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(outage)
                for _ in range(4):
                    tg.start_soon(client_loop)
        rows = await settled(env["RESET_MCP_DATABASE_URL"], sink)
    tally = Tally.of([r["message_id"] for r in rows], sink.records())
    print(f"PostgreSQL killed mid-load for 1.5 s: answers {dict(outcomes)}; {tally.line()}")
    assert not any("Server returned an error response" in said for said in outcomes)  # a 500's stand-in text
    assert any(at > up for at, _ in accepted)  # the server recovered by itself
    assert {r["send_id"] for r in rows} >= {request for _, request in accepted}  # each accepted request has its row
    assert tally.lost == 0 and all(r["status"] == "sent" for r in rows)


async def test_with_the_database_down_every_route_answers_503_with_retry_after_never_500(
    tmp_path: Path, sink: FaultSink, pg_cluster: PgCluster, log: Path
) -> None:
    # Issue 21 item 5: the SDK's key check used to let the store's error through, a bare 500.
    env = env_on(pg_cluster, tmp_path, sink)
    with http_server(env, log) as server:
        async with mcp_client(server.url, server.key) as client:
            assert not (await client.call_tool("request_password_reset", reset_call(0))).is_error
            pg_cluster.kill()
            with anyio.fail_after(15), pytest.raises(MCPError) as refused:
                await client.call_tool("request_password_reset", reset_call(1))
        auth = {"Authorization": f"Bearer {server.key}"}
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {}}
        accept = {"Accept": "application/json, text/event-stream"}
        mcp = httpx.post(f"{server.url}/mcp", json=call, headers=auth | accept, timeout=15)
        rest = httpx.post(f"{server.url}/v1/tokens/verify", json={"token": "x.y.z"}, headers=auth, timeout=15)
        health = httpx.get(f"{server.url}/healthz", timeout=15)
    said = log.read_text()
    print(f"PostgreSQL down: MCP call -> {refused.value}; POST /mcp {mcp.status_code}; REST {rest.status_code}")
    assert str(refused.value) == STORE_UNAVAILABLE  # the documented text, shown by the SDK client
    assert (mcp.status_code, mcp.headers.get("retry-after")) == (503, "5")
    assert mcp.json()["error"]["message"] == STORE_UNAVAILABLE
    assert (rest.status_code, rest.headers.get("retry-after"), rest.json()) == (503, "5", {"error": STORE_UNAVAILABLE})
    assert health.status_code == 503
    assert "Exception in ASGI application" not in said  # (asyncpg's pool logs its reconnect tries with tracebacks)


async def test_a_call_whose_writes_fail_after_its_key_was_checked_is_a_tool_error(
    tmp_path: Path, sink: FaultSink, pg_cluster: PgCluster, log: Path
) -> None:
    # The database answers reads (the key check) but refuses writes: a failover that left
    # the server on a read-only replica. The call is the documented tool error.
    env = env_on(pg_cluster, tmp_path, sink)
    with http_server(env, log) as server:
        async with mcp_client(server.url, server.key) as client:
            assert not (await client.call_tool("request_password_reset", reset_call(0))).is_error
            await admin_sql(
                pg_cluster, "ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()"
            )
            await anyio.sleep(0.5)  # every session re-reads the configuration
            result = await client.call_tool("request_password_reset", reset_call(1))
            health = httpx.get(f"{server.url}/healthz", timeout=10)  # reads work, writes do not
            await admin_sql(pg_cluster, "ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()")
    assert result.is_error and STORE_UNAVAILABLE in str(result.content)
    assert health.status_code == 503 and health.json()["reason"].startswith("writes failing")
    assert "Exception in ASGI application" not in log.read_text()


async def admin_sql(cluster: PgCluster, *statements: str) -> None:
    conn = await asyncpg.connect(cluster.url(), timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()
