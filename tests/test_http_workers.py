"""`serve --workers N`: N real worker processes on one port, one SQLite file, one secret.

The server runs as users run it (`python -m reset_mcp serve ...` in its own process),
driven by the SDK's client over streamable HTTP and delivering to a real SMTP server on
loopback (aiosmtpd).
"""

from __future__ import annotations

import argparse
import contextlib
import email
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from conftest import TOKEN_RE, reset_args, token_from_text
from httpserver import free_port, mcp_client
from smtpd_sink import SmtpSink

from reset_mcp.cli.main import main as cli_main
from reset_mcp.cli.main import serve_settings
from reset_mcp.config import Settings, load_settings
from reset_mcp.errors import ConfigError
from reset_mcp.server.http.workers import Supervisor
from reset_mcp.server.serve import serve
from tests.faults.serving import listening

pytestmark = pytest.mark.anyio
ACCESS_LINE = re.compile(r"uvicorn\.access worker (\d+): .*\"POST /mcp")
HEALTH_LINE = re.compile(r"uvicorn\.access worker (\d+): 127\.0\.0\.1:(\d+) - \"GET /healthz")


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    key: str
    data_dir: Path
    log: Path
    started: float

    def workers(self) -> list[int]:
        """The worker processes: children of the server started by multiprocessing."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (entry / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if ppid == self.proc.pid and b"spawn_main" in cmdline:
                found.append(int(entry.name))
        return sorted(found)


def _env(data_dir: Path, sink_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MCP_")}
    # No RESET_MCP_SECRET: the first start generates the key file, once, for every worker.
    env |= {
        "RESET_MCP_DATA_DIR": str(data_dir),
        "RESET_MCP_EMAIL_BACKEND": "smtp",
        "RESET_MCP_SMTP_HOST": "127.0.0.1",
        "RESET_MCP_SMTP_PORT": str(sink_port),
        "RESET_MCP_SMTP_TLS": "none",
        "RESET_MCP_FROM_ADDRESS": "auth@acme.test",
        "RESET_MCP_PRODUCT_NAME": "Acme",
        "RESET_MCP_LOG_LEVEL": "INFO",  # uvicorn's access lines name the worker that answered
    }
    return env


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, SmtpSink]]:
    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    with SmtpSink() as sink:
        env = _env(data_dir, sink.port)
        cli = [sys.executable, "-m", "reset_mcp"]
        created = subprocess.run(
            [*cli, "keys", "create", "--scope", "send", "--scope", "redeem", "--name", "t"],
            env=env, cwd=tmp_path, capture_output=True, text=True, check=True,
        )  # fmt: skip
        key = created.stdout.strip().splitlines()[-1]
        port = free_port()
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [*cli, "serve", "--transport", "streamable-http", "--port", str(port), "--workers", "2"],
                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        server = Served(f"http://127.0.0.1:{port}", proc, key, data_dir, log, time.monotonic())
        try:
            deadline = time.monotonic() + 60
            while len(server.workers()) < 2 or listening(port) < 2 or not _healthy(server.url):
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"no two healthy workers in 60 s:\n{log.read_text()}"
                time.sleep(0.1)
            yield server, sink
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def test_two_workers_share_the_port_the_database_and_the_secret(
    served: tuple[Served, SmtpSink], tmp_path: Path
) -> None:
    server, sink = served
    workers = server.workers()
    assert len(workers) == 2
    n = 24

    async def one(i: int) -> None:
        # A client of each era; the handshake era works because --workers implies stateless.
        async with mcp_client(server.url, server.key, mode="legacy" if i % 2 else "auto") as client:
            args = reset_args(email=f"user{i}@example.com", user_id=f"u-{i}", ip=f"198.51.100.{i + 1}")
            result = await client.call_tool("request_password_reset", args)
            assert not result.is_error, result.content
            assert result.structured_content["status"] == "sent"

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)

    deadline = time.monotonic() + 30
    while len(sink.raw) < n and time.monotonic() < deadline:
        await anyio.sleep(0.05)
    messages = [email.message_from_bytes(raw, policy=policy.default) for raw in sink.raw]
    assert Counter(str(m["To"]) for m in messages) == Counter(f"user{i}@example.com" for i in range(n))

    # Tokens minted by either worker verify on any: one secret, one token table.
    tokens = [token_from_text(m.get_body(("plain",)).get_content()) for m in messages]  # type: ignore[union-attr]
    for token in tokens[:8]:
        async with mcp_client(server.url, server.key) as client:
            verified = await client.call_tool("verify_reset_token", {"token": token})
            assert verified.structured_content["valid"] is True

    # One token consumed through both workers at once: exactly one call wins (one
    # conditional UPDATE under SQLite's write lock, whichever process makes it).
    consumed: list[bool] = []

    async def consume(token: str) -> None:
        async with mcp_client(server.url, server.key) as client:
            result = await client.call_tool("consume_reset_token", {"token": token})
            consumed.append(bool(result.structured_content.get("consumed")))

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(consume, tokens[0])
    assert sorted(consumed) == [False] * 9 + [True]

    # One account's requests through both workers at once: the hourly limit (5) holds,
    # because each is counted and recorded inside one write transaction.
    statuses: list[str] = []

    async def limited(i: int) -> None:
        async with mcp_client(server.url, server.key) as client:
            args = reset_args(email="carol@example.com", user_id="u-carol", ip=f"203.0.113.{i + 1}")
            statuses.append((await client.call_tool("request_password_reset", args)).structured_content["status"])

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(limited, i)
    assert sorted(statuses) == ["rate_limited"] * 3 + ["sent"] * 5

    # Both workers answered MCP requests (each connection goes to whichever accepts it).
    answered_by = {int(m.group(1)) for m in ACCESS_LINE.finditer(server.log.read_text())}
    assert answered_by == set(workers), server.log.read_text()[-3000:]
    assert (server.data_dir / "secret.key").stat().st_mode & 0o777 == 0o600

    # A graceful stop takes every worker down with the supervisor, nothing left sending.
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(30) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    db = sqlite3.connect(server.data_dir / "reset-mcp.db")
    try:
        outbox = dict(db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
    finally:
        db.close()
    # n resets, 5 for carol, the "password changed" notice of the one consume, and
    # whatever security alert carol's burst from eight addresses raised: all sent, once.
    delivered = [email.message_from_bytes(raw, policy=policy.default) for raw in sink.raw]
    ids = [str(m["Message-ID"]) for m in delivered]
    assert outbox == {"sent": len(delivered)} and len(set(ids)) == len(ids) >= n + 5 + 1
    to_carol = [m.get_body(("plain",)).get_content() for m in delivered if str(m["To"]) == "carol@example.com"]  # type: ignore[union-attr]
    assert sum(1 for text in to_carol if TOKEN_RE.search(text)) == 5


def test_workers_need_streamable_http(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(data_dir=tmp_path, secret="s" * 40)
    args = argparse.Namespace(transport="sse", host=None, port=0, stateless=False, workers=2)
    assert serve(serve_settings(settings, args), args.transport) == 2
    assert "--workers needs --transport streamable-http" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_a_bad_worker_count_is_refused_before_anything_starts(
    value: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli_main(["serve", "--transport", "streamable-http", "--workers", value])
    assert exit_.value.code == 2
    assert "--workers" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="RESET_MCP_HTTP_WORKERS"):
        load_settings(data_dir=tmp_path, http_workers=0)


def _answered_by(log: str) -> dict[int, int]:
    """Client port -> the worker that answered it, from uvicorn's access lines."""
    return {int(m.group(2)): int(m.group(1)) for m in HEALTH_LINE.finditer(log)}


def test_a_burst_of_connections_is_spread_over_the_workers(served: tuple[Served, SmtpSink]) -> None:
    # 16 keep-alive connections opened at once. With one shared listening socket the
    # first worker to wake accepts them all; with a socket per worker the kernel spreads
    # them (the chance that all 16 land on one of two: 2 in 65,536).
    server, _ = served
    port = int(server.url.rsplit(":", 1)[1])
    conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(16)]
    try:
        for conn in conns:
            conn.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        for conn in conns:
            assert b" 200 " in conn.recv(4096)
        local_ports = [conn.getsockname()[1] for conn in conns]
    finally:
        for conn in conns:
            conn.close()
    time.sleep(0.2)  # the access lines reach the log file
    answered = _answered_by(server.log.read_text())
    per_worker = Counter(answered[p] for p in local_ports)
    assert set(per_worker) == set(server.workers()), per_worker


def test_a_worker_that_dies_is_replaced(served: tuple[Served, SmtpSink]) -> None:
    server, _ = served
    first = server.workers()
    # Both serve (the fixture waited for them to listen and answer): a death now is no crash loop.
    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        now = server.workers()
        if len(now) == 2 and first[0] not in now:
            break
        assert time.monotonic() < deadline, f"no replacement for {first[0]}: {now}\n{server.log.read_text()[-2000:]}"
        time.sleep(0.1)
    assert first[1] in now
    # The replacement serves once it has started (it listens only then).
    deadline = time.monotonic() + 30
    while listening(int(server.url.rsplit(":", 1)[1])) < 2:
        assert time.monotonic() < deadline, server.log.read_text()[-2000:]
        time.sleep(0.1)
    while set(_answered_by(server.log.read_text()).values()) & set(now) != set(now):
        assert time.monotonic() < deadline, server.log.read_text()[-2000:]
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{server.url}/healthz", timeout=2)
    assert "exited with code -9; starting another" in server.log.read_text()


# The supervisor alone, with stand-in workers (module-level: spawn pickles them by name).


def _workers(count: int, port: int = 0) -> Settings:
    return load_settings(secret="s" * 40, http_host="127.0.0.1", http_port=port, http_workers=count)


def _exits_at_once(settings: Settings, options: dict[str, Any], serving: Any) -> None:
    sys.exit(3)


def _exits_after_a_while(settings: Settings, options: dict[str, Any], serving: Any) -> None:
    serving.set()  # it served, then died: to be replaced
    with Path(options["record"]).open("a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(0.6)
    sys.exit(1)


def test_a_worker_that_dies_before_it_serves_stops_the_server() -> None:
    supervisor = Supervisor(_workers(2), {}, target=_exits_at_once)
    started = time.monotonic()
    assert supervisor.run() == 1
    assert supervisor.started == 2  # not a restart loop: the two first workers, however long they took
    assert time.monotonic() - started < 60


def test_a_worker_that_dies_after_it_served_is_restarted_until_the_server_stops(tmp_path: Path) -> None:
    record = tmp_path / "starts"
    supervisor = Supervisor(_workers(1), {"record": str(record)}, target=_exits_after_a_while)

    def stop_after_three_starts() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not record.exists() or len(record.read_text().split()) < 3):
            time.sleep(0.05)
        supervisor.stop()

    threading.Thread(target=stop_after_three_starts, daemon=True).start()
    assert supervisor.run() == 0
    assert len(set(record.read_text().split())) >= 3  # three processes, one after another


def test_workers_stop_when_the_supervisor_is_killed(served: tuple[Served, SmtpSink]) -> None:
    # SIGKILL leaves the supervisor no chance to stop anyone: the kernel tells the
    # workers (PR_SET_PDEATHSIG), and each stops gracefully and lets go of the port.
    server, _ = served
    workers = server.workers()
    server.proc.kill()
    server.proc.wait()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, f"workers {workers} outlived their supervisor"
        time.sleep(0.1)
    assert listening(int(server.url.rsplit(":", 1)[1])) == 0


def test_a_port_something_listens_on_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # SO_REUSEPORT alone would let a second server bind beside the first and take half
    # of its connections; the supervisor refuses instead, before starting any worker.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            Supervisor(_workers(2, port), {}, target=_exits_at_once)
        settings = load_settings(data_dir=tmp_path, secret="s" * 40)
        args = argparse.Namespace(transport="streamable-http", host=None, port=port, stateless=False, workers=2)
        assert serve(serve_settings(settings, args), args.transport) == 1
        assert f"cannot bind 127.0.0.1:{port}" in capsys.readouterr().err
