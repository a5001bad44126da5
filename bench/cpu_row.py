"""Row "cpu" (issue 24): the server's CPU time per MCP call, over stdio and streamable HTTP.

`request_password_reset` N times, one call at a time, with the `memory` email backend
(no SMTP: what is measured is the server's own work per call, transport included). The
figure is process CPU time, utime + stime from /proc/<pid>/stat, of the server process
and every descendant (an HTTP supervisor and its worker alike), plus cutime + cstime (the
CPU of descendants that exited and were reaped, which would otherwise vanish from the
sum). It is read after the warm-up and again after the N calls, so start-up, imports and
the first calls' lazy work are left out. Client-side calls/s and answer latency are
recorded beside it, and the bench process's own CPU per call (the client's cost).

Each transport is measured a second time against `bench.sdk_floor`: the same tool,
arguments and result model with no body, served the same way. That is the SDK's floor for
such a call on this machine in this run; the server's figure minus it is reset-mcp's own
work (the reset, our tool wrapper, the API key check on HTTP).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from bench import stdio_row
from bench.common import Identities, now, server_pythonpath, summary
from bench.http_rows import HttpServer, drive
from bench.http_server import free_port
from bench.httpclient import Connection

CLK_TCK = os.sysconf("SC_CLK_TCK")  # /proc/<pid>/stat counts CPU time in these ticks
MEMORY = {"RESET_MCP_EMAIL_BACKEND": "memory"}
NO_SMTP_PORT = 2525  # the settings want a port; the memory backend never dials it


def parse_stat(text: str) -> tuple[int, int]:
    """(ppid, utime + stime + cutime + cstime in ticks) from one /proc/<pid>/stat line.

    The command name (field 2) is in parentheses and may itself hold spaces or ')', so
    fields are counted from the last ')'; after it, field k of proc(5) is rest[k - 3]."""
    rest = text[text.rindex(")") + 2 :].split()
    return int(rest[1]), sum(int(v) for v in rest[11:15])


def _scan() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, ticks) for every process now."""
    out: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = parse_stat(Path(entry.path, "stat").read_text())
            except (OSError, ValueError):  # it exited between the listing and the read
                continue
    return out


def tree(root: int, table: dict[int, tuple[int, int]]) -> list[int]:
    """`root` and all its descendants in `table`."""
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.append(pid)
            todo.extend(kids.get(pid, ()))
    return found


def tree_ticks(root: int) -> int:
    table = _scan()
    return sum(table[pid][1] for pid in tree(root, table))


def children(pid: int) -> set[int]:
    return {child for child, (ppid, _) in _scan().items() if ppid == pid}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def stdio_server_pid(before: set[int], marker: bytes = b"reset_mcp") -> int:
    """The server the SDK client just spawned: the bench's one new child whose command line
    holds `marker` (the bench's sinks are its children too)."""
    new = [p for p in children(os.getpid()) - before if marker in _cmdline(p)]
    if len(new) != 1:
        raise RuntimeError(f"expected one new {marker.decode()} child of the bench, found {new}")
    return new[0]


async def measure(server_pid: int, n: int, calls: Callable[[], Awaitable[tuple[list[float], int]]]) -> dict[str, Any]:
    """Run `calls` (n calls; answers latencies and errors) between two readings of the tree's CPU."""
    ticks, client_cpu, t0 = tree_ticks(server_pid), time.process_time(), now()
    answered, errors = await calls()
    elapsed, client_cpu = now() - t0, time.process_time() - client_cpu
    ticks = tree_ticks(server_pid) - ticks
    lat = summary(answered)
    return {
        "n": n,
        "server_cpu_ms_per_call": round(ticks / CLK_TCK / n * 1000, 3),
        "server_cpu_s": round(ticks / CLK_TCK, 2),
        "client_cpu_ms_per_call": round(client_cpu / n * 1000, 3),
        "calls_per_s": round(n / elapsed, 1),
        "p50_ms": lat.get("p50_ms"),
        "p99_ms": lat.get("p99_ms"),
        "errors": errors,
        "tick_ms": round(1000 / CLK_TCK, 1),
    }


async def stdio(n: int, warmup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-cpu-stdio-") as tmp:
        before = children(os.getpid())
        async with Client(stdio_row.server_params(Path(tmp) / "data", NO_SMTP_PORT, **MEMORY)) as client:
            pid = stdio_server_pid(before)
            await stdio_row.warm(client, warmup)

            async def calls() -> tuple[list[float], int]:
                _, answered, errors, _ = await stdio_row.calls(client, Identities("cpu-stdio"), n)
                return answered, errors

            return await measure(pid, n, calls) | {"transport": "stdio", "server_processes": 1}


def floor_params() -> StdioServerParameters:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": server_pythonpath(stdio_row.ROOT)}
    return StdioServerParameters(command=sys.executable, args=["-m", "bench.sdk_floor"], env=env)


async def stdio_floor(n: int, warmup: int) -> dict[str, Any]:
    before = children(os.getpid())
    async with Client(floor_params()) as client:
        pid = stdio_server_pid(before, b"bench.sdk_floor")
        await stdio_row.warm(client, warmup)

        async def calls() -> tuple[list[float], int]:
            _, answered, errors, _ = await stdio_row.calls(client, Identities("cpu-floor-stdio"), n)
            return answered, errors

        return await measure(pid, n, calls) | {"transport": "stdio", "server_processes": 1, "sdk_floor": True}


class FloorHttp:
    """`python -m bench.sdk_floor --http PORT` as a child process (no API key: the SDK alone)."""

    def __init__(self) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": server_pythonpath(stdio_row.ROOT)}
        cmd = [sys.executable, "-m", "bench.sdk_floor", "--http", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def connection(self) -> Connection:
        return Connection("127.0.0.1", self.port)

    def __enter__(self) -> FloorHttp:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("the SDK floor's HTTP server did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def http_floor(n: int, warmup: int) -> dict[str, Any]:
    with FloorHttp() as server:
        await drive(server, "cpu-floor-http-warm", warmup, 1)

        async def calls() -> tuple[list[float], int]:
            _, answered, errors, _ = await drive(server, "cpu-floor-http", n, 1)
            return answered, len(errors)

        return await measure(server.pid, n, calls) | {
            "transport": "streamable-http", "server_processes": 1, "sdk_floor": True,
        }  # fmt: skip


async def http(n: int, warmup: int, workdir: Path) -> dict[str, Any]:
    server = HttpServer(workdir / "cpu-http-data", NO_SMTP_PORT, workdir / "cpu-http.log", extra_env=MEMORY)
    with server:
        await drive(server, "cpu-http-warm", warmup, 1)

        async def calls() -> tuple[list[float], int]:
            _, answered, errors, _ = await drive(server, "cpu-http", n, 1)
            return answered, len(errors)

        processes = len(tree(server.pid, _scan()))
        return await measure(server.pid, n, calls) | {"transport": "streamable-http", "server_processes": processes}


async def row(n: int, workdir: Path, warmup: int = 50) -> dict[str, Any]:
    return {
        "stdio": await stdio(n, warmup),
        "stdio_sdk_floor": await stdio_floor(n, warmup),
        "http": await http(n, warmup, workdir),
        "http_sdk_floor": await http_floor(n, warmup),
    }
