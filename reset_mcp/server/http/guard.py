"""Slow and idle clients cannot use up the HTTP server: a connection cap and read deadlines.

uvicorn gives a new connection no deadline until its first response (an idle or trickling
socket is kept forever), and its `limit_concurrency` counts idle connections too: past it
every request, /healthz included, gets 503 while the idle sockets stay. And once the
process runs out of file descriptors, new connections are dropped unanswered. So the
protocol uvicorn runs is wrapped here (httptools' or h11's, whichever it would use):

- a request's line and headers must arrive within `header_timeout` of the connection
  opening or of the previous response ending (a trickle of bytes does not reset it),
  and its body within `body_timeout` after the headers; else the connection is closed;
- at most `max_connections` are open per process. A connection past the cap displaces
  the one idle longest (waiting for, or still receiving, a request's headers): those
  cost the server nothing to drop and a real client retries. Connections whose request
  is being served are never displaced; when all are, the new connection is closed.
- `raise_fd_limit` lifts the soft file-descriptor limit towards the hard one at start,
  and lowers the cap if the hard limit cannot hold it, so the cap is reached first;
- `WholeBody` hands the MCP SDK a POST only once its body is in: a client that leaves
  (or is cut at its body deadline) half-way never reaches it, so no error is logged.

A flood of idle or slow sockets thus displaces itself, and /healthz (or any request that
arrives whole) is still answered. tests/test_slowloris.py holds each part.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from reset_mcp.config import Settings

log = logging.getLogger("reset_mcp.http")
MAX_MCP_BODY = 4 * 1024 * 1024  # the SDK's own cap (mcp.server.transport_security)
FD_RESERVE = 256  # descriptors kept for the database, SMTP, files and the listening sockets
WARN_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_connections: int = 1000
    header_timeout: float = 10.0
    body_timeout: float = 30.0


def limits_for(settings: Settings) -> HttpLimits:
    """The settings' limits, the cap lowered if the process cannot open that many files."""
    return HttpLimits(
        max_connections=raise_fd_limit(settings.http_max_connections),
        header_timeout=settings.http_header_timeout_seconds,
        body_timeout=settings.http_body_timeout_seconds,
    )


class GuardedConfig(uvicorn.Config):
    """uvicorn's Config carrying the limits, with the guarded protocol as its HTTP protocol."""

    def __init__(self, app: Any, *, limits: HttpLimits, **options: Any) -> None:
        options["http"] = guarded_protocol(options.get("http", "auto"))
        super().__init__(app, **options)
        self.limits = limits


class _Shed:
    """Per uvicorn server: its idle connections, longest idle first, and what was shed."""

    def __init__(self) -> None:
        self.idle: OrderedDict[_Guarded, None] = OrderedDict()
        self.displaced = self.refused = self.timed_out = 0
        self._warned = 0.0

    def note(self) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_SECONDS:
            self._warned = now
            log.warning(
                "connection limits at work: %d displaced at the cap, %d refused (every connection busy), "
                "%d timed out reading a request, so far",
                self.displaced, self.refused, self.timed_out,
            )  # fmt: skip


class _Guarded:
    """Mixed into uvicorn's HTTP protocols (attributes from them: config, transport, connections)."""

    _HEAD: ClassVar[str] = "head"  # waiting for or reading a request's line and headers: displaceable
    _BODY: ClassVar[str] = "body"  # headers in, body arriving
    _SERVING: ClassVar[str] = "serving"  # the request is read; the app is answering

    config: Any
    connections: set[Any]
    server_state: Any
    transport: asyncio.Transport
    _phase: str | None = None
    _deadline: asyncio.TimerHandle | None = None

    @property
    def _shed(self) -> _Shed:
        shed = getattr(self.server_state, "reset_mcp_shed", None)
        if shed is None:
            shed = _Shed()
            self.server_state.reset_mcp_shed = shed
        return shed

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        limits: HttpLimits = self.config.limits
        shed = self._shed
        if len(self.connections) > limits.max_connections:
            if shed.idle:
                oldest, _ = shed.idle.popitem(last=False)
                oldest._close()
                shed.displaced += 1
            else:
                shed.refused += 1
                shed.note()
                self._close()
                return
            shed.note()
        self._enter(self._HEAD)

    def connection_lost(self, exc: Exception | None) -> None:
        self._leave()
        super().connection_lost(exc)  # type: ignore[misc]

    def _enter(self, phase: str) -> None:
        if phase == self._phase:
            return  # a deadline runs from the phase's start, not from the last byte
        self._leave()
        self._phase = phase
        limits: HttpLimits = self.config.limits
        if phase == self._HEAD:
            self._shed.idle[self] = None
            self._deadline = asyncio.get_running_loop().call_later(limits.header_timeout, self._timed_out)
        elif phase == self._BODY:
            self._deadline = asyncio.get_running_loop().call_later(limits.body_timeout, self._timed_out)

    def _leave(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._shed.idle.pop(self, None)
        self._phase = None

    def _timed_out(self) -> None:
        self._deadline = None
        self._shed.timed_out += 1
        self._shed.note()
        self._close()

    def _close(self) -> None:
        self._leave()
        if not self.transport.is_closing():
            self.transport.close()


class GuardedH11(_Guarded, H11Protocol):
    def handle_events(self) -> None:
        super().handle_events()
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:  # waiting for a request's head (after an early answer too)
            self._enter(self._HEAD)
        elif state is h11.SEND_BODY:
            self._enter(self._BODY)
        else:  # DONE, MUST_CLOSE, ...: the whole request is in
            self._enter(self._SERVING)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._enter(self._HEAD)  # kept alive: the next request's deadline starts now


def _httptools_protocol() -> type[asyncio.Protocol] | None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is not installed (Windows): h11 it is, as uvicorn would choose
        return None

    class GuardedHttpTools(_Guarded, HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._enter(self._BODY)

        def on_message_complete(self) -> None:
            super().on_message_complete()
            # Answered before its body was in (a 401, say): now the next request's wait.
            answered = self.cycle is not None and self.cycle.response_complete
            self._enter(self._HEAD if answered else self._SERVING)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and not self.pipeline:
                self._enter(self._HEAD)

    return GuardedHttpTools


GuardedHttpTools = _httptools_protocol()


def guarded_protocol(http: str | type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """The guarded form of uvicorn's `http` choice ("auto", "httptools" or "h11")."""
    if http == "h11" or (http == "auto" and GuardedHttpTools is None):
        return GuardedH11
    if http in ("auto", "httptools"):
        if GuardedHttpTools is None:
            raise RuntimeError("httptools is not installed")
        return GuardedHttpTools
    raise ValueError(f"no guarded form of the HTTP protocol {http!r}")


def raise_fd_limit(max_connections: int) -> int:
    """Lift the soft descriptor limit to fit the cap (within the hard limit); the cap that fits."""
    try:
        import resource
    except ImportError:  # Windows: no rlimits
        return max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitted = max(soft - FD_RESERVE, 16)
        log.warning(
            "the open-file limit (%d) cannot hold RESET_MCP_HTTP_MAX_CONNECTIONS=%d: capping at %d; "
            "raise the limit (ulimit -n, LimitNOFILE=) to allow more",
            soft, max_connections, fitted,
        )  # fmt: skip
        return fitted
    return max_connections


Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


class WholeBody:
    """An ASGI wrapper: a POST reaches `app` only with its whole body (at most `limit` bytes).

    The SDK reads a body itself and logs an error with a traceback when the client leaves
    half-way; here such a request simply ends (there is nobody to answer)."""

    def __init__(self, app: ASGIApp, limit: int = MAX_MCP_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        body, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # gone before its body was in
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await send({"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"22")]})
                await send({"type": "http.response.body", "body": b"Request body too large"})
                return
            body.append(chunk)
            if not message.get("more_body", False):
                break
        whole: list[Message] = [{"type": "http.request", "body": b"".join(body), "more_body": False}]

        async def replay() -> Message:
            return whole.pop() if whole else await receive()

        await self.app(scope, replay, send)
