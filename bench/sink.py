"""The benchmark's SMTP sink: a separate process, so it shares no event loop or GIL with
the code being measured.

    python -m bench.sink --port 0 --control 0      # prints "READY <smtp port> <control port>"
    python -m bench.sink --delay 0.2               # answer each message's DATA after 200 ms

It accepts every message (plain SMTP on 127.0.0.1, a minimal server written for
throughput, see `SmtpSinkProtocol`) and records, for each one,
its Message-ID, its recipients and the moment DATA was accepted (`time.monotonic()`,
which on Linux is CLOCK_MONOTONIC: the same clock in every process, so a client can
subtract its own start time). Latency "until the sink accepted the message" is that.

A small JSON-lines control port answers `stats`, `wait`, `records`, `raw`, `capture`
and `clear`; `SinkClient` below speaks it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


class Recorder:
    """What the sink accepted: one entry per message, in arrival order."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.ids: list[str] = []
        self.rcpts: list[str] = []
        self.seen: dict[str, int] = {}  # Message-ID -> how many times it arrived
        self.duplicates = 0
        self.connections = 0
        self.capture = False
        self.raw: list[bytes] = []
        self.changed = asyncio.Event()

    def accept(self, data: bytes, rcpts: list[str], accepted: float) -> None:
        end = data.find(b"\r\n\r\n")
        head = data[: end + 2] if end >= 0 else data[:8192]
        match = _MESSAGE_ID.search(head)
        mid = match.group(1).decode("ascii", "replace") if match else f"<none-{len(self.ids)}>"
        count = self.seen.get(mid, 0) + 1
        self.seen[mid] = count
        if count > 1:
            self.duplicates += 1
        self.times.append(accepted)
        self.ids.append(mid)
        self.rcpts.append(",".join(rcpts))
        if self.capture:  # undo the transparency dots (RFC 5321, 4.5.2)
            raw = data[1:] if data.startswith(b"..") else data
            self.raw.append(raw.replace(b"\r\n..", b"\r\n."))
        self.changed.set()

    def clear(self) -> None:
        self.times.clear()
        self.ids.clear()
        self.rcpts.clear()
        self.seen.clear()
        self.raw.clear()
        self.duplicates = 0

    async def wait(self, count: int, timeout: float) -> bool:  # noqa: ASYNC109 - a control command
        deadline = time.monotonic() + timeout
        while len(self.times) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return len(self.times) >= count
        return True


class SmtpSinkProtocol(asyncio.Protocol):
    """A minimal SMTP server (RFC 5321 commands a client sends to deliver; no auth, no TLS).

    Written for throughput rather than with aiosmtpd, whose per-line DATA handling made
    the sink, not the code measured, the bottleneck: here a message's DATA is found by
    one search for the terminating CRLF.CRLF, whatever its size.
    """

    def __init__(self, rec: Recorder, delay: float = 0.0) -> None:
        self.rec = rec
        self.delay = delay  # seconds before a message's 250 (a slow server), during which nothing else is read
        self.answering = False
        self.buf = bytearray()
        self.in_data = False
        self.scan_from = 0
        self.rcpts: list[str] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 127.0.0.1 bench sink ESMTP\r\n")

    def data_received(self, chunk: bytes) -> None:
        self.buf += chunk
        while self.transport is not None and not self.answering:
            if self.in_data:
                if self.buf.startswith(b".\r\n"):  # an empty message
                    end, body = 0, b""
                else:
                    end = self.buf.find(b"\r\n.\r\n", self.scan_from)
                    if end < 0:
                        self.scan_from = max(0, len(self.buf) - 4)
                        return
                    body = bytes(self.buf[: end + 2])
                    end += 2
                del self.buf[: end + 3]
                self.in_data, self.scan_from = False, 0
                if self.delay:
                    self.answering = True
                    asyncio.get_running_loop().call_later(self.delay, self._accept, body, self.rcpts)
                    self.rcpts = []
                    return
                self._accept(body, self.rcpts)
                self.rcpts = []
                continue
            nl = self.buf.find(b"\r\n")
            if nl < 0:
                return
            line = bytes(self.buf[:nl]).decode("utf-8", "replace")
            del self.buf[: nl + 2]
            self.command(line)

    def _accept(self, body: bytes, rcpts: list[str]) -> None:
        self.answering = False
        if self.transport is None:  # the client left before the answer: not accepted
            return
        self.rec.accept(body, rcpts, time.monotonic())
        self.transport.write(b"250 2.0.0 Message accepted for delivery\r\n")
        if self.delay and self.buf:
            self.data_received(b"")  # what arrived meanwhile

    def command(self, line: str) -> None:
        assert self.transport is not None
        verb = line[:4].upper()
        if verb == "EHLO":
            self.rec.connections += 1
            self.transport.write(b"250-127.0.0.1\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 33554432\r\n")
        elif verb == "HELO":
            self.rec.connections += 1
            self.transport.write(b"250 127.0.0.1\r\n")
        elif verb == "MAIL":
            self.rcpts = []
            self.transport.write(b"250 2.1.0 OK\r\n")
        elif verb == "RCPT":
            addr = line[line.find(":") + 1 :].strip()
            self.rcpts.append(addr[1 : addr.find(">")] if addr.startswith("<") else addr)
            self.transport.write(b"250 2.1.5 OK\r\n")
        elif verb == "DATA":
            if not self.rcpts:
                self.transport.write(b"503 5.5.1 RCPT first\r\n")
                return
            self.in_data = True
            self.transport.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        elif verb in ("RSET", "NOOP"):
            if verb == "RSET":
                self.rcpts = []
            self.transport.write(b"250 2.0.0 OK\r\n")
        elif verb == "QUIT":
            self.transport.write(b"221 2.0.0 Bye\r\n")
            self.transport.close()
            self.transport = None
        else:
            self.transport.write(b"502 5.5.2 Command not implemented\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _control(rec: Recorder, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := await reader.readline():
            req = json.loads(line)
            cmd = req.get("cmd")
            out: dict[str, Any]
            if cmd == "stats":
                out = {"count": len(rec.times), "unique": len(rec.seen), "duplicates": rec.duplicates}
                out |= {"connections": rec.connections, "rss_kb": _rss_kb()}
            elif cmd == "wait":
                ok = await rec.wait(int(req["count"]), float(req.get("timeout", 30)))
                out = {"ok": ok, "count": len(rec.times)}
            elif cmd == "records":
                start = int(req.get("since", 0))
                out = {
                    "times": rec.times[start:],
                    "ids": rec.ids[start:],
                    "rcpts": rec.rcpts[start:],
                }
            elif cmd == "raw":
                start = int(req.get("since", 0))
                out = {"raw": [base64.b64encode(r).decode() for r in rec.raw[start:]]}
            elif cmd == "capture":
                rec.capture = bool(req.get("on", True))
                out = {"capture": rec.capture}
            elif cmd == "clear":
                rec.clear()
                out = {"ok": True}
            else:
                out = {"error": f"unknown command {cmd!r}"}
            writer.write(json.dumps(out).encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()


async def serve(port: int, control_port: int, delay: float = 0.0) -> None:
    rec = Recorder()
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(lambda: SmtpSinkProtocol(rec, delay), host=HOST, port=port, backlog=1024)
    ctl = await asyncio.start_server(lambda r, w: _control(rec, r, w), host=HOST, port=control_port)
    smtp_port = smtp.sockets[0].getsockname()[1]
    ctl_port = ctl.sockets[0].getsockname()[1]
    print(f"READY {smtp_port} {ctl_port}", flush=True)
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.buffer.read1(65536) else None)
    await stop.wait()  # the parent closing our stdin (or dying) ends the sink


def main() -> None:
    p = argparse.ArgumentParser(description="benchmark SMTP sink")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--control", type=int, default=0)
    p.add_argument("--delay", type=float, default=0.0, help="seconds before answering each message")
    args = p.parse_args()
    asyncio.run(serve(args.port, args.control, args.delay))


# The parent's side -----------------------------------------------------------------------


@dataclass
class SinkRecords:
    times: list[float]
    ids: list[str]
    rcpts: list[str]

    def by_rcpt(self) -> dict[str, float]:
        """Recipient -> first acceptance time (each benchmark request uses its own address)."""
        out: dict[str, float] = {}
        for t, r in zip(self.times, self.rcpts, strict=True):
            out.setdefault(r, t)
        return out


class SinkProcess:
    """Start the sink as a child process; `with SinkProcess() as sink:` stops it after."""

    def __init__(self, delay: float = 0.0) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.control_port = 0
        self.delay = delay

    def start(self) -> SinkProcess:
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        argv = [sys.executable, "-m", "bench.sink"] + (["--delay", str(self.delay)] if self.delay else [])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=root)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().split()
        if not line or line[0] != "READY":
            self.stop()
            raise RuntimeError("the SMTP sink did not start")
        self.port, self.control_port = int(line[1]), int(line[2])
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> SinkProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self) -> SinkClient:
        return SinkClient(self.control_port)


class SinkClient:
    """Async client of the sink's control port (one short connection per call)."""

    def __init__(self, control_port: int) -> None:
        self.control_port = control_port

    async def call(self, **req: Any) -> dict[str, Any]:
        import anyio

        async with await anyio.connect_tcp(HOST, self.control_port) as stream:
            await stream.send(json.dumps(req).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                buf += await stream.receive(1 << 20)
        return json.loads(buf)

    async def stats(self) -> dict[str, Any]:
        return await self.call(cmd="stats")

    async def count(self) -> int:
        return int((await self.stats())["count"])

    async def wait(self, count: int, timeout: float = 60.0) -> bool:  # noqa: ASYNC109 - forwarded to the sink
        return bool((await self.call(cmd="wait", count=count, timeout=timeout))["ok"])

    async def records(self, since: int = 0) -> SinkRecords:
        out = await self.call(cmd="records", since=since)
        return SinkRecords(out["times"], out["ids"], out["rcpts"])

    async def raw(self, since: int = 0) -> list[bytes]:
        return [base64.b64decode(r) for r in (await self.call(cmd="raw", since=since))["raw"]]

    async def capture(self, on: bool = True) -> None:
        await self.call(cmd="capture", on=on)

    async def clear(self) -> None:
        await self.call(cmd="clear")


if __name__ == "__main__":
    main()
