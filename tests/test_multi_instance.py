"""Two real `reset-mcp serve` processes over stdio, one PostgreSQL database.

Instances A and B share a fresh schema of this run's database (the token and rate-limit
tests share one pair, each with its own account; the outbox drain starts its own pair on
SMTP): what one instance writes (tokens, rate-limit history, outbox rows), the other sees.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from pg import fresh_schema_url, pg_database_fixture

from reset_mcp.audit import verify_chain
from reset_mcp.store import open_store
from reset_mcp.store.records import OutboxRow, SendRecord
from reset_mcp.tokens import TokenSigner

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
pg_url = pg_database_fixture()

ROOT = Path(__file__).resolve().parent.parent
SECRET = "mi-test-secret-0123456789abcdefghijklmnopqrstuv"  # 48 chars, shared by both instances
RESET_URL = "https://app.example.com/reset?token={token}"
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
START_TIMEOUT = 60.0
DRAIN_TIMEOUT = 120.0  # ~10 s on an idle 2-core machine; generous for a loaded CI box


def server_env(db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        "RESET_MCP_DATABASE_URL": db_url,
        "RESET_MCP_SECRET": SECRET,
        "RESET_MCP_DATA_DIR": str(data_dir),
        "RESET_MCP_RESET_URL": RESET_URL,
        "RESET_MCP_WORKER_POLL_SECONDS": "0.2",
        "RESET_MCP_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    env.update({f"RESET_MCP_{k.upper()}": v for k, v in extra.items()})
    return env


@asynccontextmanager
async def instances(*envs: dict[str, str]) -> AsyncIterator[list[Client]]:
    """Start one server process per env, side by side. Each client is entered and left in
    its own task, so the pair may outlive the task that started it (a module fixture)."""
    clients: list[Any] = [None] * len(envs)
    ready = [asyncio.Event() for _ in envs]
    done = asyncio.Event()

    async def run(i: int, env: dict[str, str]) -> None:
        params = StdioServerParameters(command=sys.executable, args=["-m", "reset_mcp", "serve"], env=env, cwd=ROOT)
        async with Client(params, read_timeout_seconds=60) as client:
            clients[i] = client
            ready[i].set()
            await done.wait()

    async def all_ready() -> None:
        await asyncio.gather(*(event.wait() for event in ready))

    tasks = [asyncio.create_task(run(i, env)) for i, env in enumerate(envs)]
    waiter = asyncio.create_task(all_ready())
    try:
        finished, _ = await asyncio.wait([waiter, *tasks], timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in finished:
            for task in finished:
                task.result()  # a server that failed to start: its error, here
            raise TimeoutError(f"the servers did not start within {START_TIMEOUT:g}s")
        yield clients
    finally:
        waiter.cancel()
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)


async def call(client: Client, tool: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def reset_link_token(outbox_dir: Path, recipient: str) -> str:
    """The token from the reset email to `recipient` in the outbox folder."""
    found = []
    for path in sorted(outbox_dir.glob("*-password_reset-*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if recipient in str(msg["To"]):
            text = msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
            found += re.findall(r"https://app\.example\.com/reset\?token=([A-Za-z0-9._-]+)", text)
    assert len(set(found)) == 1, f"expected one reset link to {recipient}, found {len(set(found))}"
    return found[0]


def request_args(email_addr: str, user_id: str, ip: str = "203.0.113.7") -> dict[str, str]:
    return {"email": email_addr, "user_id": user_id, "ip": ip, "user_agent": UA}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope: the instance pair below outlives a single test


@pytest.fixture(scope="module")
async def pair(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Client, Client, Path]]:
    """Instances A and B on one schema, sharing an outbox folder; tests use distinct accounts."""
    db = fresh_schema_url(pg_url)
    tmp = tmp_path_factory.mktemp("pair")
    outbox_dir = tmp / "outbox"
    common = {"email_backend": "outbox", "outbox_dir": str(outbox_dir)}
    async with instances(server_env(db, tmp / "a", **common), server_env(db, tmp / "b", **common)) as (a, b):
        yield a, b, outbox_dir


async def test_token_issued_by_one_instance_is_consumed_through_the_other(pair) -> None:
    a, b, outbox_dir = pair
    issued = await call(a, "request_password_reset", **request_args("alice@example.com", "u-alice"))
    assert issued["status"] == "sent"
    token = reset_link_token(outbox_dir, "alice@example.com")
    verified = await call(b, "verify_reset_token", token=token)
    assert verified["valid"] and verified["user_id"] == "u-alice"
    assert (await call(b, "consume_reset_token", token=token))["consumed"] is True
    assert (await call(a, "consume_reset_token", token=token))["consumed"] is False
    assert (await call(a, "verify_reset_token", token=token))["valid"] is False


async def test_fifty_concurrent_consumes_over_two_instances_one_wins(pair) -> None:
    a, b, outbox_dir = pair
    issued = await call(a, "request_password_reset", **request_args("bob@example.com", "u-bob"))
    assert issued["status"] == "sent"
    token = reset_link_token(outbox_dir, "bob@example.com")
    results = await asyncio.gather(*(call(a if i % 2 else b, "consume_reset_token", token=token) for i in range(50)))
    assert [r["consumed"] for r in results].count(True) == 1
    assert next(r for r in results if r["consumed"])["user_id"] == "u-bob"


async def test_rate_limit_is_shared_across_instances(pair) -> None:
    a, b, _ = pair
    answers = []
    for client in (a, a, a, b, b, b):
        answers.append(await call(client, "request_password_reset", **request_args("carol@example.com", "u-carol")))
    assert [x["status"] for x in answers] == ["sent"] * 5 + ["rate_limited"]
    assert answers[5]["retry_after"] > 0


class Recorder:
    """An aiosmtpd handler that keeps the Message-ID of every message it accepts."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []
        self.senders: Counter[str] = Counter()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content or envelope.content)
        self.message_ids.append(str(msg["Message-ID"]))
        self.senders[envelope.mail_from] += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Any:
    from aiosmtpd.controller import Controller

    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


async def test_two_instances_drain_one_outbox_each_email_once(pg_url: str, tmp_path: Path, smtp_server) -> None:
    db = fresh_schema_url(pg_url)
    total = 500
    now = datetime.now(UTC)
    payload = {"reason": "x", "details": None, "attempts": [], "locale": None, "timezone": None}
    store = await open_store(db)
    try:
        async with store.transaction() as tx:
            for i in range(total):
                send_id, row_id = f"req_drain{i:04d}", f"msg_drain{i:04d}"
                await tx.insert_send(
                    SendRecord(send_id, "security_alert", f"user{i}@example.com", f"u{i}", "queued", None,
                               "test", "send", now, now, payload=dict(payload))
                )  # fmt: skip
                await tx.insert_outbox(
                    OutboxRow(row_id, send_id, "security_alert", f"user{i}@example.com", f"<{row_id}@example.com>",
                              "pending", now, now, payload=dict(payload))
                )  # fmt: skip
        smtp = {
            "email_backend": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": str(smtp_server.port),
            "smtp_tls": "none",
        }
        env_a = server_env(db, tmp_path / "a", from_address="a@example.com", **smtp)
        env_b = server_env(db, tmp_path / "b", from_address="b@example.com", **smtp)  # tells who delivered
        async with instances(env_a, env_b):
            async with asyncio.timeout(DRAIN_TIMEOUT):
                while True:
                    async with store.transaction() as tx:
                        counts = await tx.outbox_counts()
                    if counts.get("sent") == total:
                        break
                    await asyncio.sleep(0.2)
        async with store.transaction() as tx:
            sends = await tx.list_sends("sent", total + 1)
            audit = await tx.list_audit(limit=10 * total)
    finally:
        await store.aclose()
    received = Counter(smtp_server.handler.message_ids)
    expected = {f"<msg_drain{i:04d}@example.com>" for i in range(total)}
    assert set(received) == expected
    assert [mid for mid, n in received.items() if n != 1] == []
    assert len(sends) == total
    senders = smtp_server.handler.senders
    assert set(senders) == {"a@example.com", "b@example.com"}, senders  # both instances took part
    report = verify_chain(
        audit, TokenSigner(SECRET).audit_ring
    )  # both processes appended delivery entries to one chain
    assert report.ok, report.problem
    assert sum(e.action == "delivery_sent" for e in audit) == total
