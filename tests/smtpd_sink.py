"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it receives, for tests.

    sink = SmtpSink()            # picks a free port; SmtpSink(port=N) binds that port
    sink.start()                 # may be called later, e.g. after a "server down" phase
    ... sink.messages            # parsed email.message.Message objects, in arrival order
    ... sink.raw                 # the exact bytes of each message's DATA
    ... sink.connections         # client connections that greeted (EHLO/HELO)
    sink.refuse("550 5.1.1 no such user")          # answer RCPT (or at="DATA") with this
    sink.data_delay = 0.5        # a slow server: sit on each message before accepting it
    SmtpSink(pipelining=False)   # a server that does not offer PIPELINING (RFC 2920)
    sink.stop()

It runs in aiosmtpd's own thread and event loop, so it works beside anyio tests and
beside server subprocesses alike. `start()` after `stop()` binds the same port again.
`with SmtpSink() as sink:` starts and stops it.
"""

from __future__ import annotations

import asyncio
import email
import socket
import threading
import time
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port nothing listens on right now (connecting to it is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class RecordingHandler:
    """aiosmtpd handler: records greeted sessions and accepted messages; can refuse."""

    def __init__(self, *, pipelining: bool = True) -> None:
        self.pipelining = pipelining  # offer PIPELINING (RFC 2920) in the EHLO reply, as most MTAs do
        self.lock = threading.Lock()
        self.raw: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.sessions: list[Session] = []  # strong refs: one entry per greeted connection
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.data_delay: float = 0.0  # seconds to sit on a message before answering DATA
        self.received = threading.Condition(self.lock)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        self._greeted(session, hostname)
        if self.pipelining:  # aiosmtpd reads commands one by one, so it serves a pipelined client as is
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_HELO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str) -> str:
        self._greeted(session, hostname)
        return f"250 {server.hostname}"

    def _greeted(self, session: Session, hostname: str) -> None:
        session.host_name = hostname
        with self.lock:
            if not any(s is session for s in self.sessions):
                self.sessions.append(session)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)  # aiosmtpd's own loop, in its thread
        if self.data_reply is not None:
            return self.data_reply
        data = envelope.original_content or b""
        with self.received:
            self.raw.append(bytes(data))
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
            self.received.notify_all()
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(
        self, port: int | None = None, handler: RecordingHandler | None = None, *, pipelining: bool = True
    ) -> None:
        self.port = port or free_port()
        self.handler = handler or RecordingHandler(pipelining=pipelining)
        self._controller: Controller | None = None

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> SmtpSink:
        if self._controller is not None:
            return self
        deadline = time.monotonic() + 5
        while True:  # the port may still be held for a moment by a listener just closed
            controller = Controller(self.handler, hostname=HOST, port=self.port, ready_timeout=5)
            try:
                controller.start()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # what arrived ----------------------------------------------------------------------
    @property
    def raw(self) -> list[bytes]:
        with self.handler.lock:
            return list(self.handler.raw)

    @property
    def messages(self) -> list[Message]:
        return [email.message_from_bytes(data) for data in self.raw]

    @property
    def envelopes(self) -> list[tuple[str, list[str]]]:
        with self.handler.lock:
            return list(self.handler.envelopes)

    @property
    def connections(self) -> int:
        """Client connections that greeted; aiosmtpd's own start-up probe is not counted."""
        with self.handler.lock:
            return len(self.handler.sessions)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        """Block (this thread) until `count` messages arrived; a sync helper for non-async tests."""
        with self.handler.received:
            self.handler.received.wait_for(lambda: len(self.handler.raw) >= count, timeout)
        return self.messages

    # refusing --------------------------------------------------------------------------
    @property
    def rcpt_reply(self) -> str | None:
        return self.handler.rcpt_reply

    @rcpt_reply.setter
    def rcpt_reply(self, value: str | None) -> None:
        self.handler.rcpt_reply = value

    @property
    def data_reply(self) -> str | None:
        return self.handler.data_reply

    @data_reply.setter
    def data_reply(self, value: str | None) -> None:
        self.handler.data_reply = value

    @property
    def data_delay(self) -> float:
        return self.handler.data_delay

    @data_delay.setter
    def data_delay(self, seconds: float) -> None:
        self.handler.data_delay = seconds

    def refuse(self, reply: str | None, *, at: str = "RCPT") -> None:
        """Answer RCPT (or DATA) with e.g. "451 4.3.0 try later" or "550 5.1.1 no such user"; None accepts."""
        if at.upper() == "RCPT":
            self.handler.rcpt_reply = reply
        elif at.upper() == "DATA":
            self.handler.data_reply = reply
        else:
            raise ValueError("at must be RCPT or DATA")
