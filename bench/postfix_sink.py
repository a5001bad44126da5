"""Postfix's `smtp-sink` as a second SMTP sink, so no figure depends on a sink we wrote.

    smtp-sink [-u root] -c -d <tmpfs>/%H%M%S. 127.0.0.1:PORT 100

`-c` prints running counters (`sess=N quit=N mesg=N`, separated by carriage returns) on
stdout each time a message's "." is received or a session ends; a reader thread stamps
each new `mesg` count with `time.monotonic()` (the clock the rows start their timers
with), so a row can tell when the sink had counted its last message. `-d` writes every
transaction, with smtp-sink's own `X-Rcpt-Args:` line per recipient, to a file of its own
(not `-D`'s one shared file: transactions in flight at once could interleave there) on
tmpfs (/dev/shm when there is one: a disk write per message would slow the sink, not
the server being measured); after a run the rows count recipients there, so "every
message delivered exactly once" is checked by recipient, not only by total.

smtp-sink gives no per-message accept time, so rows against it report the client's
latency (a reset-mcp call answers `sent` only once the SMTP server accepted the message;
Django's `save()` returns once its SMTP session is over).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import IO

import anyio

DEBIAN_PACKAGE = "postfix"
_MESG_RE = re.compile(rb"mesg=(\d+)")
_RCPT_RE = re.compile(rb"^X-Rcpt-Args: <([^>]*)>", re.MULTILINE)


def smtp_sink_binary() -> str | None:
    """The smtp-sink executable (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("smtp-sink") or shutil.which("smtp-sink", path="/usr/sbin:/usr/local/sbin")


def missing() -> str | None:
    """None when smtp-sink can run here, else why not (the rows say skipped with this)."""
    if smtp_sink_binary() is None:
        return f"smtp-sink is not installed (Debian package {DEBIAN_PACKAGE!r})"
    return None


def parse_counts(chunk: bytes) -> list[int]:
    """The `mesg=` counts in a piece of smtp-sink's `-c` output, in order."""
    return [int(m) for m in _MESG_RE.findall(chunk)]


def recipients(head: bytes) -> list[str]:
    """The recipients of one dumped transaction (smtp-sink's `X-Rcpt-Args` lines)."""
    return [m.decode("utf-8", "replace").lower() for m in _RCPT_RE.findall(head.split(b"\nReceived:", 1)[0])]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostfixSink:
    """smtp-sink in its own process; `count`, `wait` and `recipients` as the rows need them."""

    def __init__(self) -> None:
        binary = smtp_sink_binary()
        if binary is None:
            raise RuntimeError(missing())
        self.binary = binary
        self.port = _free_port()
        shm = Path("/dev/shm")
        self._dir = tempfile.TemporaryDirectory(prefix="bench-smtp-sink-", dir=shm if shm.is_dir() else None)
        self.dump_dir = Path(self._dir.name)
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._counted: list[tuple[int, float]] = [(0, time.monotonic())]  # (mesg count, when first seen)
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        # smtp-sink refuses to run as root without -u (it drops to that user after binding).
        user = ["-u", "root"] if os.geteuid() == 0 else []
        # The time in the name keeps smtp-sink's 32-bit random suffix from repeating within a file name.
        dump = str(self.dump_dir / "%H%M%S.")
        return [self.binary, *user, "-c", "-d", dump, f"127.0.0.1:{self.port}", "100"]

    def start(self) -> PostfixSink:
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"smtp-sink exited ({self.proc.returncode}): {err.strip()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(256).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("smtp-sink did not answer on its port")

    def _read(self, stream: IO[bytes]) -> None:
        # Counters arrive as "\r"-separated records; read what is there, stamp it, parse it.
        tail = b""
        while chunk := os.read(stream.fileno(), 65536):
            stamp = time.monotonic()
            records = (tail + chunk).split(b"\r")
            tail = records.pop()
            for count in parse_counts(b"\r".join(records)):
                with self._lock:
                    if count > self._counted[-1][0]:
                        self._counted.append((count, stamp))

    def count(self) -> int:
        """Messages smtp-sink has received so far (its own `mesg` counter)."""
        with self._lock:
            return self._counted[-1][0]

    def counted_at(self, target: int) -> float | None:
        """When the counter first showed `target` or more messages, or None."""
        with self._lock:
            return next((t for c, t in self._counted if c >= target), None)

    async def wait(self, target: int, timeout: float = 60.0) -> bool:  # noqa: ASYNC109 - a deadline, like SinkClient's
        with anyio.move_on_after(timeout):
            while self.count() < target:  # noqa: ASYNC110 - the count moves in a thread, not a task
                await anyio.sleep(0.01)
        return self.count() >= target

    def dumped(self) -> set[str]:
        """The dump files now: pass them to `recipients_since` to count one run's messages."""
        return {p.name for p in self.dump_dir.iterdir()}

    def recipients_since(self, before: set[str]) -> Counter[str]:
        """How many messages each recipient got in the dump files not in `before`."""
        out: Counter[str] = Counter()
        for path in self.dump_dir.iterdir():
            if path.name not in before:
                with path.open("rb") as f:
                    out.update(recipients(f.read(4096)))  # smtp-sink's own lines come first
        return out

    def stop(self) -> None:
        if self.proc is not None:
            proc, self.proc = self.proc, None
            proc.terminate()  # smtp-sink holds no state worth a graceful stop
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if self._reader is not None:
                self._reader.join(5)  # it sees EOF once the process is gone
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self._dir.cleanup()

    def __enter__(self) -> PostfixSink:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
