"""An SMTP server that misbehaves on purpose, in a process of its own.

    sink = FaultSink(tmp_path)          # a free port; FaultSink(tmp_path, port=N) for that one
    sink.start()                        # `python -m tests.faults.sink` in a child process
    sink.set("delay", delay=8)          # answer each message's final 250 after 8 s
    sink.set("hang")                    # take the message, never answer
    sink.set("reply", reply="451 4.3.0 try later")   # or "550 5.1.1 no such user"
    sink.set("drop", times=1)           # close the link after the data, before the reply; once
    sink.set("accept", pipelining=False)  # no PIPELINING in the EHLO reply
    sink.records()                      # every message whose data arrived, in order
    sink.kill() / sink.stop()

A fault applies to every message, or to the first `times` messages after `set`, then the
sink accepts. Each message is recorded (JSON lines, flushed at once) as soon as its data
has fully arrived, before the fault: so a message whose connection was dropped, or which
the sink sits on forever, is still counted, as a receiving MTA may have kept it. A second
line says what the sink answered; `records()` joins them (`outcome` accepted: it wrote 250).

It is a separate process so that it keeps its own time: a test's event loop, a server
under test or a SIGKILL of either cannot stall or lose what it recorded. aiosmtpd reads
pipelined commands one by one, so it serves pipelining clients as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
MODES = ("accept", "delay", "hang", "reply", "drop")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# The server (runs in the child process) ---------------------------------------------------
class _Control:
    """The current fault, re-read whenever the control file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: int | None = None
        self.spec: dict[str, Any] = {"mode": "accept"}
        self.applied = 0  # messages the current fault was applied to

    def current(self) -> dict[str, Any]:
        with contextlib.suppress(FileNotFoundError):
            stamp = self.path.stat().st_mtime_ns
            if stamp != self._stamp:
                self.spec = json.loads(self.path.read_text())
                self._stamp = stamp
                self.applied = 0
        return self.spec

    def fault_for_next_message(self) -> dict[str, Any]:
        spec = self.current()
        times = spec.get("times")
        if times is not None and self.applied >= times:
            return {"mode": "accept"}
        self.applied += 1
        return spec


class FaultHandler:
    def __init__(self, control: _Control, record: Path) -> None:
        self.control = control
        self.record = record.open("a", buffering=1)  # one line a message, flushed at once
        self.connections = itertools.count(1)
        self.seq = itertools.count(1)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves greeting bookkeeping to a handler that hooks EHLO
        session.conn_id = next(self.connections)
        if self.control.current().get("pipelining", True):
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        fault = self.control.fault_for_next_message()
        mode = fault.get("mode", "accept")
        seq = f"{os.getpid()}.{next(self.seq)}"  # unique across restarts of the sink on one file
        headers = BytesHeaderParser().parsebytes(envelope.original_content or b"")
        self._line(
            event="received", seq=seq, message_id=headers.get("Message-ID"), to=list(envelope.rcpt_tos),
            kind=headers.get("X-Reset-MCP-Kind"), conn=getattr(session, "conn_id", None), mode=mode,
        )  # fmt: skip
        outcome = "abandoned"  # the client went away while the sink sat on the message
        try:
            delay = float(fault.get("delay", 0) or 0)
            if delay:
                await asyncio.sleep(delay)
            if mode == "hang":
                outcome = "hung"
                await asyncio.sleep(1e9)  # cancelled by aiosmtpd when the client goes away
            if mode == "drop":
                outcome = "dropped"
                server.transport.abort()  # no reply: the client cannot know the message arrived
                await asyncio.sleep(1e9)
            if mode == "reply":
                outcome = "refused"
                return str(fault["reply"])
            outcome = "accepted"
            return "250 2.0.0 Message accepted for delivery"
        finally:
            self._line(event="answered", seq=seq, outcome=outcome)

    def _line(self, **fields: Any) -> None:
        self.record.write(json.dumps({"t": time.time(), **fields}) + "\n")


async def _serve(port: int, control: Path, record: Path) -> None:
    from aiosmtpd.smtp import SMTP

    handler = FaultHandler(_Control(control), record)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="sink.test", timeout=600), HOST, port)
    print("ready", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, args.control, args.record))


# The controller (used by tests) ------------------------------------------------------------
class FaultSink:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.control = workdir / f"sink-{self.port}.json"
        self.record = workdir / f"sink-{self.port}.jsonl"
        self.log = workdir / f"sink-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FaultSink:
        if self.proc is not None and self.proc.poll() is None:
            return self
        if not self.control.exists():
            self.set("accept")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.sink", "--port", str(self.port),
                 "--control", str(self.control), "--record", str(self.record)],
                cwd=REPO, stdout=subprocess.PIPE, stderr=log, env={**os.environ, "PYTHONPATH": str(REPO)},
            )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "ready" once listening, or EOF if it died
        if line.strip() != b"ready":
            self.proc.wait(5)
            raise RuntimeError(f"the fault sink did not start: {self.log.read_text()[-2000:]}")
        return self

    def set(self, mode: str, *, delay: float = 0, reply: str | None = None, times: int | None = None,
            pipelining: bool = True) -> None:  # fmt: skip
        """The fault from now on; `times` limits it to the next N messages."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if mode == "reply" and not reply:
            raise ValueError("mode 'reply' needs reply='451 ...' or '550 ...'")
        spec = {"mode": mode, "delay": delay, "reply": reply, "times": times, "pipelining": pipelining,
                "set_at": time.time_ns()}  # fmt: skip
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps(spec))
        os.replace(tmp, self.control)  # the sink never reads a half-written file

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def records(self) -> list[dict[str, Any]]:
        """One record a message whose data arrived, in arrival order; `outcome` is what the
        sink answered: accepted (250), refused, dropped, hung, abandoned (the client left
        while the sink sat on it), or pending (no answer yet, or the sink was killed)."""
        if not self.record.exists():
            return []
        received: dict[str, dict[str, Any]] = {}
        for line in self.record.read_text().splitlines():
            if not line.endswith("}"):  # a torn last line is not yet a record
                continue
            entry = json.loads(line)
            if entry["event"] == "received":
                waiting = "hung" if entry["mode"] == "hang" else "pending"
                received[entry["seq"]] = {**entry, "outcome": waiting}
            elif entry["seq"] in received:
                received[entry["seq"]].update(outcome=entry["outcome"], answered_t=entry["t"])
        return list(received.values())

    def wait_for(self, count: int, timeout: float = 10.0, *, outcome: str | None = None) -> list[dict[str, Any]]:
        """Block until `count` records (with that outcome, if given) are there, or the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            got = [r for r in self.records() if outcome is None or r["outcome"] == outcome]
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def __enter__(self) -> FaultSink:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


if __name__ == "__main__":
    main()
