"""`serve` on stdio: the SDK's transport, with stdin read so that Ctrl-C stops the server.

Why not `MCPServer.run_stdio_async` as it is: the SDK (mcp 2.3) reads stdin through
`anyio.wrap_file`, a blocking `readline()` in a worker thread. On Ctrl-C anyio cancels
the tasks, but a thread cannot be cancelled: the task group waits for that `readline()`,
which returns only when a line (Enter) or end of file arrives. In a terminal the server
therefore ignores Ctrl-C until Enter is pressed (issue 23, item 2).

What this module does instead, on POSIX when stdin is a pipe, a socket or a terminal:
wait until the descriptor is readable on the event loop (`anyio.wait_readable`), which a
cancel interrupts at once, then `os.read` what is there. A read after readiness does
not block, so the descriptor stays in blocking mode (O_NONBLOCK would be shared with the
shell that owns the terminal). The rest is the SDK's own `stdio_server`: its framing,
its stdout claim. Like the SDK, fd 0 points at the null device while serving, so a child
process reads end of file rather than protocol bytes, and is restored afterwards.
Where the event loop cannot watch the descriptor (Windows, a regular file, /dev/null),
reads fall back to a worker thread: those reads never wait for a person.

Answers are written on the event loop too, when stdout is a pipe (how every MCP client
starts a server): the SDK writes and flushes each message through `anyio.wrap_file`,
two hand-offs to a worker thread per message, which cost more server CPU than the JSON
(issue 24). A pipe that poll calls writable has room for PIPE_BUF bytes, so a write of at
most that many does not block; longer messages go out in such pieces, each after
readiness, and a client that stops reading holds up only its own answers, as before.
Like the SDK, fd 1 points at stderr while serving, so stray prints miss the wire.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Any, TypeVar

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

from reset_mcp.errors import ResetMCPError

WAITING = "reset-mcp: waiting for an MCP client on stdio; Ctrl-C to stop"
READ_SIZE = 65536
WRITE_SIZE = select.PIPE_BUF if hasattr(select, "PIPE_BUF") else 512
T = TypeVar("T")


class StdinLines:
    """The lines arriving on a descriptor, as the SDK's transport iterates them (`async for`)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pollable = sys.platform != "win32" and _is_stream(fd)

    async def _read(self) -> bytes:
        if self.pollable:
            try:
                await anyio.wait_readable(self.fd)
                return os.read(self.fd, READ_SIZE)
            except OSError:
                # epoll refuses some character devices (/dev/null: EPERM); read them in a thread.
                self.pollable = False
        return await anyio.to_thread.run_sync(os.read, self.fd, READ_SIZE)

    async def __aiter__(self) -> AsyncIterator[str]:
        pending = b""
        while True:
            chunk = await self._read()
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", errors="replace") + "\n"
        if pending:
            yield pending.decode("utf-8", errors="replace")


class PipeWriter:
    """The text file the SDK's transport writes each message to (`write`, then `flush`),
    written straight to a pipe on the event loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        # Asked first, without waiting: a client reading its answers leaves room in the
        # pipe, and one poll(2) is cheaper than registering with the event loop's
        # selector, a loop iteration and unregistering again, per message.
        self._room = select.poll()
        self._room.register(fd, select.POLLOUT)

    async def write(self, text: str) -> int:
        data = memoryview(text.encode("utf-8"))
        while data:
            if not self._room.poll(0):
                await anyio.wait_writable(self.fd)
            data = data[os.write(self.fd, data[:WRITE_SIZE]) :]
        return len(text)

    async def flush(self) -> None:
        """Nothing is buffered."""


def _mode(fd: int) -> int:
    """The descriptor's file type bits; 0 (no type) when it cannot be read."""
    try:
        return os.fstat(fd).st_mode
    except OSError:
        return 0


def _is_pipe(fd: int) -> bool:
    return stat.S_ISFIFO(_mode(fd))


def _is_stream(fd: int) -> bool:
    mode = _mode(fd)
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


@contextmanager
def claimed_stdin() -> Iterator[int]:
    """A private duplicate of fd 0 to read the protocol from; fd 0 itself reads /dev/null meanwhile."""
    with _claimed(0, lambda: os.open(os.devnull, os.O_RDONLY)) as private:
        yield private


@contextmanager
def claimed_stdout() -> Iterator[int]:
    """A private duplicate of fd 1 to write the protocol to; fd 1 itself writes to stderr meanwhile."""
    with _claimed(1, lambda: os.dup(2)) as private:
        yield private


@contextmanager
def _claimed(fd: int, diversion: Callable[[], int]) -> Iterator[int]:
    import fcntl  # POSIX only; run_stdio does not come here on Windows

    private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    other = diversion()
    try:
        os.dup2(other, fd)
    finally:
        os.close(other)
    try:
        yield private
    finally:
        os.dup2(private, fd)
        os.close(private)


async def run_stdio(server: MCPServer) -> None:
    """What `MCPServer.run_stdio_async` does, with stdin read by `StdinLines`."""
    if sys.platform == "win32":  # console handles are not pollable; the SDK's own transport serves
        await server.run_stdio_async()
        return
    # mcp 2.3 has no public handle on the low-level server; run_stdio_async uses this one.
    lowlevel = server._lowlevel_server
    with contextlib.ExitStack() as claims:
        lines: Any = StdinLines(claims.enter_context(claimed_stdin()))  # iterated like an anyio.AsyncFile
        # Only a pipe is written on the loop (see the module's docstring); else the SDK's own writer.
        out: Any = PipeWriter(claims.enter_context(claimed_stdout())) if _is_pipe(1) else None
        async with stdio_server(stdin=lines, stdout=out) as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


def announce_when_started(
    factory: Callable[[], AbstractAsyncContextManager[T]], *, interactive: bool | None = None
) -> Callable[[], AbstractAsyncContextManager[T]]:
    """The app factory, which also says on stderr, once the app is up, that a person in a
    terminal is looking at a server waiting for a client. `interactive` is read now:
    while serving, fd 0 is the null device."""
    if interactive is None:
        interactive = _stdin_is_terminal()

    @asynccontextmanager
    async def started() -> AsyncIterator[T]:
        async with factory() as app:
            if interactive:
                print(WAITING, file=sys.stderr, flush=True)
            yield app

    return started


def _stdin_is_terminal() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


def serve_stdio(server: MCPServer, backend_options: dict[str, Any] | None = None) -> None:
    """Run the server on stdio until end of file or Ctrl-C (KeyboardInterrupt propagates).

    A start-up failure of ours (ConfigError and kin) surfaces as itself, not wrapped in the
    task groups' ExceptionGroup, so the command line prints its one line."""
    try:
        anyio.run(run_stdio, server, backend_options=backend_options)
    except BaseExceptionGroup as group:
        found = _domain_error(group)
        if found is None:
            raise
        raise found from None


def _domain_error(group: BaseExceptionGroup[Any]) -> BaseException | None:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _domain_error(exc)
            if found is not None:
                return found
        elif isinstance(exc, ResetMCPError | KeyboardInterrupt):
            return exc
    return None
