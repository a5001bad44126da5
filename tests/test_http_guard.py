"""The HTTP guard (server/http/guard.py) on both of uvicorn's protocols, httptools and h11.

A real uvicorn server in a thread runs a small ASGI app through `GuardedConfig` with short
deadlines and a small cap; raw sockets play the slow clients. tests/test_slowloris.py
attacks the whole `reset-mcp serve` process.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import uvicorn

from reset_mcp.server.http.guard import GuardedConfig, GuardedH11, GuardedHttpTools, HttpLimits, guarded_protocol
from tests.httpserver import free_port

LIMITS = HttpLimits(max_connections=16, header_timeout=1.0, body_timeout=1.5)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/stream":  # a response that lasts: sends a line a second until the client leaves
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        while True:
            await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
            await anyio.sleep(0.3)
    if scope["path"] == "/early":  # answers without reading the body (a 401 or 421 would)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(params=["httptools", "h11"])
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    number = free_port()
    config = GuardedConfig(
        app, limits=LIMITS, host="127.0.0.1", port=number, http=request.param, log_level="warning",
        timeout_graceful_shutdown=1,
    )  # fmt: skip
    assert config.http is (GuardedHttpTools if request.param == "httptools" else GuardedH11)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    yield number
    server.should_exit = True
    thread.join(10)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(False)
    return sock


def state(sock: socket.socket) -> bytes | None:
    """None while open and silent; b"" once closed; else what the server sent."""
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def closed_within(sock: socket.socket, seconds: float, *, feed: bytes | None = None) -> float:
    """How long until the server closed `sock` (sending `feed` every 0.1 s meanwhile)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        got = state(sock)
        if got == b"":
            return time.monotonic() - started
        assert got is None, got
        if feed:
            with contextlib.suppress(OSError):
                sock.send(feed)
        time.sleep(0.1)
    raise AssertionError(f"still open after {seconds} s")


def answer(sock: socket.socket, seconds: float = 5.0) -> bytes:
    """Read until the app's whole "ok" answer is in (it may come in more than one segment)."""
    data, started = b"", time.monotonic()
    while not data.endswith(b"ok"):
        assert time.monotonic() - started < seconds, data
        got = state(sock) if not sock.getblocking() else sock.recv(65536)
        assert got != b"", data
        data += got or b""
        if got is None:
            time.sleep(0.02)
    return data


def get(port: int, path: str = "/") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_an_idle_connection_is_closed_at_the_header_deadline(port: int) -> None:
    waited = closed_within(connect(port), 3)
    assert LIMITS.header_timeout - 0.2 <= waited < LIMITS.header_timeout + 1


def test_trickled_headers_do_not_extend_the_deadline(port: int) -> None:
    sock = connect(port)
    sock.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
    waited = closed_within(sock, 3, feed=b"X-A: b\r\n")
    assert waited < LIMITS.header_timeout + 1


def test_a_trickled_body_is_closed_at_the_body_deadline(port: int) -> None:
    sock = connect(port)
    sock.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    waited = closed_within(sock, 4, feed=b"a")
    assert LIMITS.body_timeout - 0.2 <= waited < LIMITS.body_timeout + 1


def test_kept_alive_connections_get_a_new_deadline_per_request(port: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    for _ in range(3):  # each request well inside its own deadline, 2.1 s in all (> either deadline)
        time.sleep(0.7)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer(sock)
    sock.close()


def test_an_early_answer_then_the_body_then_silence_is_closed(port: int) -> None:
    # Answered before its body came, the request then ends: the connection is idle again,
    # and uvicorn arms no keep-alive timer on this path. The header deadline closes it.
    sock = connect(port)
    sock.send(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
    answer(sock)
    sock.send(b"abcde")
    waited = closed_within(sock, 3)
    assert waited < LIMITS.header_timeout + 1


def test_the_cap_displaces_the_longest_idle(port: int) -> None:
    idle = [connect(port) for _ in range(LIMITS.max_connections + 24)]
    time.sleep(0.3)
    assert get(port).endswith(b"ok")  # answered with 40 idle sockets against a cap of 16
    closed = [sock for sock in idle if state(sock) == b""]
    assert len(closed) >= 24 + 1  # the oldest made room, and one more for the request above
    assert all(state(sock) is None for sock in idle[-(LIMITS.max_connections - 2) :])  # the newest kept
    for sock in idle:
        sock.close()


def test_busy_connections_are_never_displaced(port: int) -> None:
    streams = []
    for _ in range(LIMITS.max_connections):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        streams.append(sock)
    extra = socket.create_connection(("127.0.0.1", port), timeout=5)
    with contextlib.suppress(ConnectionResetError):
        assert extra.recv(1) == b""  # refused: every connection is serving a response
    extra.close()
    time.sleep(max(LIMITS.header_timeout, LIMITS.body_timeout) + 0.5)  # past every read deadline
    for sock in streams:
        assert b"tick" in sock.recv(65536)  # still streaming
        sock.close()


def test_guarded_protocol_choices() -> None:
    assert guarded_protocol("h11") is GuardedH11
    assert guarded_protocol("auto") is (GuardedHttpTools or GuardedH11)
    with pytest.raises(ValueError, match="no guarded form"):
        guarded_protocol("zttp")
