"""Slowloris: idle and trickling sockets cannot take the HTTP server down (issue 22 item 14).

A real `reset-mcp serve` process, attacked with raw sockets from this one: over a
thousand connections that send nothing, or a request's headers a line at a time, or
whole headers and then a body byte by byte. Before the fix, 1,050 idle sockets against a
process limited to 1,024 open files made /healthz fail (and uvicorn gives an idle socket
no deadline at all). Now (server/http/guard.py) /healthz and real requests are answered
throughout, the slow sockets are closed at their deadlines, and long responses (an SSE
stream) are never cut.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest

from tests.conftest import SECRET
from tests.httpserver import free_port, sse_mcp_client

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "reset_mcp"]
FLOOD = 1200  # more than the red team's 1,050, and than the process's file limit below
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0


@pytest.fixture(autouse=True)
def enough_files_here() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FLOOD + 500:
        pytest.skip(f"this process may open only {hard} files; the flood needs {FLOOD + 500}")
    if soft != resource.RLIM_INFINITY and soft < FLOOD + 500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FLOOD + 500 if hard == resource.RLIM_INFINITY else hard, hard))


@dataclass
class Server:
    url: str
    port: int
    key: str
    log: Path
    proc: subprocess.Popen[bytes]


def _env(data_dir: Path, **over: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "RESET_MCP_DATA_DIR": str(data_dir),
        "RESET_MCP_SECRET": SECRET,
        "RESET_MCP_LOG_LEVEL": "WARNING",
        "RESET_MCP_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "RESET_MCP_HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        **over,
    }


@contextmanager
def serving(
    tmp_path: Path, *, transport: str = "streamable-http", files: int | None = None, **env: str
) -> Iterator[Server]:
    """`reset-mcp serve` in its own process; `files`: its open-file limit (soft and hard)."""
    data_dir = tmp_path / "data"
    environ = _env(data_dir, **env)
    created = subprocess.run(
        [*CLI, "keys", "create", "--scope", "send", "--scope", "redeem", "--name", "t"],
        env=environ, cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()

    def limit_files() -> None:
        if files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    log = tmp_path / "server.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*CLI, "serve", "--transport", transport, "--port", str(port)],
            env=environ, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=limit_files,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not healthy(url):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield Server(url, port, key, log, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(False)
    return sock


def closed_by_server(sock: socket.socket, *, answer_ok: bool = False) -> bool:
    """True once the server closed this connection (EOF or reset); an answer fails the test
    unless `answer_ok` (these sockets never send a whole request)."""
    try:
        data = sock.recv(4096)
    except BlockingIOError:
        return False
    except OSError:
        return True
    assert answer_ok or data == b"", data[:200]
    return data == b"" or closed_by_server(sock, answer_ok=answer_ok)


class Trickler:
    """Sends each socket one more header line every `every` seconds, until stopped."""

    def __init__(self, sockets: list[socket.socket], every: float = 0.5) -> None:
        self.sockets, self.every = sockets, every
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        n = 0
        while not self.stop.wait(self.every):
            n += 1
            for sock in self.sockets:
                with contextlib.suppress(OSError):  # closed by the server: what we want
                    sock.send(f"X-Slow-{n}: {'a' * 10}\r\n".encode())

    def __enter__(self) -> Trickler:
        for sock in self.sockets:
            sock.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def timed(url: str, server: Server) -> tuple[float, int, int]:
    """(seconds, /healthz status, REST verify status) for a client arriving now."""
    started = time.monotonic()
    health = httpx.get(f"{url}/healthz", timeout=5).status_code
    headers = {"Authorization": f"Bearer {server.key}"}
    verify = httpx.post(f"{url}/v1/tokens/verify", json={"token": "a.b.c"}, headers=headers, timeout=5).status_code
    return time.monotonic() - started, health, verify


@pytest.mark.parametrize("files", [1024, None], ids=["file-limit-1024", "default-limits"])
def test_healthz_answers_through_a_flood_of_idle_and_trickling_sockets(tmp_path: Path, files: int | None) -> None:
    with serving(tmp_path, files=files) as server:
        idle = [connect(server.port) for _ in range(FLOOD // 2)]
        slow = [connect(server.port) for _ in range(FLOOD // 2)]
        try:
            with Trickler(slow):
                time.sleep(0.5)
                answers = [timed(server.url, server) for _ in range(5)]  # with all of them open
            assert all((health, verify) == (200, 200) for _, health, verify in answers), answers
            assert max(seconds for seconds, *_ in answers) < 2.0, answers
            # The server shed what was past its cap, then closed the rest at the header deadline
            # (the trickling ones too: a byte every half second does not keep a request alive).
            time.sleep(HEADER_TIMEOUT + 1.5)
            still_open = [s for s in idle + slow if not closed_by_server(s)]
            assert still_open == [], f"{len(still_open)} slow sockets still open"
        finally:
            for sock in idle + slow:
                sock.close()
        assert healthy(server.url)
        assert "connection limits at work" in server.log.read_text()
        if files == 1024:
            assert "cannot hold RESET_MCP_HTTP_MAX_CONNECTIONS=1000: capping at 768" in server.log.read_text()


@pytest.mark.parametrize("path", ["/v1/tokens/verify", "/mcp", "/admin/signin"])
def test_a_slow_body_is_cut_at_its_deadline_and_a_whole_request_is_not(tmp_path: Path, path: str) -> None:
    with serving(tmp_path) as server:
        sock = connect(server.port)
        kind = "application/x-www-form-urlencoded" if path.startswith("/admin") else "application/json"
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {server.key}\r\n"
            f"Accept: application/json, text/event-stream\r\nContent-Type: {kind}\r\n"
            "Content-Length: 1000\r\n\r\n"
        )
        sock.send(head.encode())
        started = time.monotonic()
        while not closed_by_server(sock):
            assert time.monotonic() - started < BODY_TIMEOUT + 3, "the slow body was never cut"
            try:
                sock.send(b" ")  # one byte at a time: never the whole body
            except OSError:
                break
            time.sleep(0.2)
        assert time.monotonic() - started >= BODY_TIMEOUT - 0.5  # not before its deadline
        sock.close()
        # A request that arrives whole, kept alive past both deadlines between requests, is fine.
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for _ in range(3):
                assert client.get("/healthz").status_code == 200
                time.sleep(1.0)
        assert healthy(server.url)
    log = server.log.read_text()
    assert "1 timed out reading a request" in log
    assert "Traceback" not in log and " ERROR " not in log  # a cut body is no server error


def test_a_request_answered_before_its_body_cannot_linger(tmp_path: Path) -> None:
    # An early answer (here 421, a wrong Host), then the body, then nothing: the connection
    # is waiting for a next request again, so the header deadline holds it.
    with serving(tmp_path) as server:
        sock = connect(server.port)
        sock.send(b"POST /v1/tokens/verify HTTP/1.1\r\nHost: elsewhere.test\r\nContent-Length: 10\r\n\r\n")
        sock.setblocking(True)
        sock.settimeout(5)
        answer = b""
        while not answer.endswith(b"Invalid Host header"):  # the whole answer, head and body
            chunk = sock.recv(4096)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 421")
        sock.send(b"0123456789")
        sock.setblocking(False)
        started = time.monotonic()
        while not closed_by_server(sock):
            assert time.monotonic() - started < HEADER_TIMEOUT + 3, "an idle connection was kept"
            time.sleep(0.1)
        sock.close()


async def test_a_long_response_is_never_cut(tmp_path: Path) -> None:
    # An SSE stream is a response that lasts: no read deadline applies to it.
    with serving(tmp_path, transport="sse") as server:
        async with sse_mcp_client(server.url, server.key) as client:
            assert (await client.list_tools()).tools
            await anyio.sleep(HEADER_TIMEOUT + BODY_TIMEOUT + 1)  # the stream sits idle past every deadline
            tools = await client.list_tools()
            assert "request_password_reset" in {t.name for t in tools.tools}


def test_when_every_connection_is_busy_a_new_one_is_closed(tmp_path: Path) -> None:
    # 16 open SSE streams fill a cap of 16: none is displaced, the 17th connection is closed.
    with serving(tmp_path, transport="sse", RESET_MCP_HTTP_MAX_CONNECTIONS="16") as server:
        streams = []
        for _ in range(16):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            head = f"GET /sse HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {server.key}\r\n\r\n"
            sock.sendall(head.encode())
            assert b"200 OK" in sock.recv(4096)
            streams.append(sock)
        try:
            extra = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            extra.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                assert extra.recv(1) == b""  # closed at once, before any request
            extra.close()
            for sock in streams:  # the streams are untouched
                sock.setblocking(False)
                assert not closed_by_server(sock, answer_ok=True)
        finally:
            for sock in streams:
                sock.close()
        time.sleep(0.5)
        assert healthy(server.url)
        assert "refused (every connection busy)" in server.log.read_text()
