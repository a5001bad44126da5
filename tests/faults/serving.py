"""`python -m reset_mcp serve` as users run it, for the fault tests.

    env = server_env(data_dir, smtp_port, RESET_MCP_DELIVERY_LEASE_SECONDS="2")
    async with stdio_server(env, log) as (client, pid): ...     # the SDK client on its stdio
    with http_server(env, log) as server: ...                  # streamable HTTP, an API key
        async with mcp_client(server.url, server.key) as client: ...

Every server gets a fresh data dir and the test's settings; nothing is shared with the
developer's environment (RESET_MCP_* variables of the caller are dropped).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import CHROME_UA, SECRET
from tests.faults.sink import HOST, REPO, free_port

# `exec` keeps the pid, so the file names the server process itself, not a wrapper.
_WRAPPER = 'echo $$ > "$RESET_MCP_TEST_PIDFILE"; exec "$0" "$@"'


def server_env(data_dir: Path, smtp_port: int, **extra: str) -> dict[str, str]:
    """Settings for a server delivering by SMTP to the sink on `smtp_port`: defaults
    everywhere except quick worker polls and generous rate limits (tests send many)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MCP_")}
    env |= {
        "PYTHONPATH": str(REPO),
        "RESET_MCP_DATA_DIR": str(data_dir),
        "RESET_MCP_SECRET": SECRET,
        "RESET_MCP_FROM_ADDRESS": "auth@acme.test",
        "RESET_MCP_EMAIL_BACKEND": "smtp",
        "RESET_MCP_SMTP_HOST": HOST,
        "RESET_MCP_SMTP_PORT": str(smtp_port),
        "RESET_MCP_SMTP_TLS": "none",
        "RESET_MCP_WORKER_POLL_SECONDS": "0.2",
        "RESET_MCP_RATE_LIMIT_ACCOUNT_PER_HOUR": "1000",
        "RESET_MCP_RATE_LIMIT_IP_PER_HOUR": "100000",
        "RESET_MCP_CALLER_SENDS_PER_HOUR": "100000",  # one key sends the whole load
        "RESET_MCP_LOG_LEVEL": "WARNING",
        "RESET_MCP_TEST_PIDFILE": str(data_dir.parent / f"serve-{time.monotonic_ns()}.pid"),
    }
    env.update(extra)
    return env


def reset_call(i: int) -> dict[str, Any]:
    return {"email": f"user{i}@example.com", "user_id": f"u-{i}", "ip": "198.51.100.7", "user_agent": CHROME_UA}


@asynccontextmanager
async def stdio_server(env: dict[str, str], log: Path, *, timeout: float = 60) -> AsyncIterator[tuple[Client, int]]:
    """A `reset-mcp serve` subprocess and an SDK client on its stdio; yields (client, pid)."""
    params = StdioServerParameters(
        command="/bin/sh", args=["-c", _WRAPPER, sys.executable, "-m", "reset_mcp", "serve"], env=env, cwd=str(REPO)
    )
    pidfile = Path(env["RESET_MCP_TEST_PIDFILE"])
    with open(log, "a") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=timeout) as client:
            yield client, int(pidfile.read_text())


@dataclass
class HttpServer:
    url: str
    key: str
    proc: subprocess.Popen[bytes]
    log: Path


@contextmanager
def http_server(env: dict[str, str], log: Path, *args: str) -> Iterator[HttpServer]:
    """`reset-mcp serve --transport streamable-http` on a free port, with a send+redeem key."""
    cli = [sys.executable, "-m", "reset_mcp"]
    created = subprocess.run(
        [*cli, "keys", "create", "--scope", "send", "--scope", "redeem", "--name", "faults"],
        env=env, cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [*cli, "serve", "--transport", "streamable-http", "--port", str(port), *args],
            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    server = HttpServer(f"http://{HOST}:{port}", key, proc, log)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(server.url):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"the server did not come up in 60 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.1)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def listening(port: int) -> int:
    """How many sockets listen on this TCP port (IPv4): one per worker that has started."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A")
