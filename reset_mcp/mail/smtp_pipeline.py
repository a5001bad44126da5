"""One SMTP mail transaction per network round trip pair: RFC 2920 command pipelining.

aiosmtplib sends MAIL, RCPT, DATA and the message one after the other, waiting for each
reply (four round trips), and runs two regular expressions over every message to fix
line endings and dot-stuff it: a third of a whole password reset's CPU on the bench
machine (bench/README.md). Nearly every production
MTA and email API (Postfix, Exim, Amazon SES, SendGrid, Mailgun, Gmail's relay)
advertises PIPELINING, so when the server does, `PipelinedChannel` takes over the
connection aiosmtplib opened and sends each message in two writes:

    MAIL FROM:<a> / RCPT TO:<b> / DATA      -> 250, 250, 354 (one round trip)
    the message, dot-stuffed, then "."      -> 250           (one round trip)

Connecting, STARTTLS and AUTH stay with aiosmtplib, done before the take-over (through
asyncio's public `Transport.set_protocol`), so the security-sensitive part of the
dialogue is the library's. Servers that do not offer PIPELINING keep aiosmtplib's
`sendmail`. Errors are aiosmtplib's own exception types, so the backend classifies both
paths alike.

RFC 2920 rules kept here: DATA is the last command of its group; after a refused MAIL
or RCPT the server refuses DATA (a conforming one: if it says 354 anyway, an empty
message is ended with "." and discarded by RSET); after any refusal the transaction is
reset with RSET so the connection stays usable.
"""

from __future__ import annotations

import asyncio
import re
from collections import deque
from typing import Any, NamedTuple

import aiosmtplib

MAX_REPLY_BYTES = 64 * 1024  # a server babbling without end is cut off, not buffered
_LONE_EOL = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_UNSAFE_IN_ADDRESS = re.compile(r"[\x00-\x20<>\x7f]")


class Reply(NamedTuple):
    code: int
    text: str


def wire_data(message: bytes, *, crlf_only: bool = False) -> bytes:
    """The message as DATA content: CRLF line ends, leading dots doubled, ending ".\r\n".

    Any other bytes are scanned for a lone CR or LF (three C-speed counts; the regular
    expression runs only when one is present). `crlf_only` says the message comes from
    `mime.to_bytes`, which writes CRLF only (tests/test_mime.py checks that for
    arbitrary input): the scans are skipped.
    """
    if not crlf_only:
        crlf = message.count(b"\r\n")
        if message.count(b"\n") != crlf or message.count(b"\r") != crlf:
            message = _LONE_EOL.sub(b"\r\n", message)
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def _address(value: str) -> bytes:
    # The service validated both addresses; this is the last line against command
    # injection (a CR or LF would start a new SMTP command).
    if _UNSAFE_IN_ADDRESS.search(value):
        raise ValueError("an envelope address contains a character SMTP cannot carry")
    return value.encode("utf-8")


class PipelinedChannel(asyncio.Protocol):
    """The client side of one SMTP connection after the handshake, sending pipelined."""

    def __init__(self, transport: asyncio.Transport, timeout: float | None, *, smtputf8: bool = False) -> None:
        self._transport = transport
        self._timeout = timeout
        self._smtputf8 = smtputf8
        self._buf = bytearray()
        self._replies: deque[Reply] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._lost: BaseException | None = None
        self._broken = False  # a transaction ended half-way: the dialogue state is unknown
        self.data_written = False  # the current message's content went out (a resend could duplicate it)

    @classmethod
    def take_over(cls, smtp: aiosmtplib.SMTP, timeout: float | None) -> PipelinedChannel:
        """Carry on the connection `smtp` opened (greeted, maybe under TLS and logged in)."""
        # Duck-typed: uvloop's transports are not asyncio.Transport subclasses.
        transport: Any = smtp.transport
        if transport is None or transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("connection lost before the first message")
        channel = cls(transport, timeout, smtputf8=smtp.supports_extension("smtputf8"))
        transport.set_protocol(channel)
        return channel

    @property
    def usable(self) -> bool:
        # Anything the server said between transactions (a "421 closing" on an idle link,
        # say) would be taken for the next MAIL's reply: such a link is not reused.
        idle_chatter = bool(self._replies or self._buf)
        return self._lost is None and not self._broken and not idle_chatter and not self._transport.is_closing()

    # asyncio.Protocol ------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._buf += data
        while True:
            end = self._reply_end()
            if end < 0:
                break
            self._replies.append(self._parse(bytes(self._buf[:end])))
            del self._buf[:end]
        if len(self._buf) > MAX_REPLY_BYTES:
            self._fail(aiosmtplib.SMTPResponseException(-1, "server reply too long"))
            return
        self._wake()

    def eof_received(self) -> bool:
        self._fail(aiosmtplib.SMTPServerDisconnected("the server closed the connection"))
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        lost = aiosmtplib.SMTPServerDisconnected("connection lost")
        lost.__cause__ = exc
        self._fail(lost)

    # Replies ---------------------------------------------------------------------------
    def _reply_end(self) -> int:
        """Where the first complete (maybe multi-line) reply in the buffer ends, or -1."""
        start = 0
        while True:
            nl = self._buf.find(b"\n", start)
            if nl < 0:
                return -1
            if self._buf[start + 3 : start + 4] != b"-":  # "250 ok" or a bare "250": the last line
                return nl + 1
            start = nl + 1

    @staticmethod
    def _parse(raw: bytes) -> Reply:
        lines = raw.split(b"\n")[:-1]
        try:
            code = int(lines[0][:3])
        except ValueError:
            return Reply(-1, f"malformed SMTP reply: {raw[:100]!r}")
        text = "\n".join(line[4:].strip().decode("utf-8", "replace") for line in lines)
        return Reply(code, text)

    def _fail(self, exc: BaseException) -> None:
        if self._lost is None:
            self._lost = exc
        if not self._transport.is_closing():
            self._transport.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _reply(self) -> Reply:
        while not self._replies:
            if self._lost is not None:
                raise self._lost
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(self._timeout):
                    await self._waiter
            except TimeoutError:
                self._fail(aiosmtplib.SMTPReadTimeoutError("timed out waiting for the server's reply"))
                raise self._lost from None  # type: ignore[misc]
            finally:
                self._waiter = None
        return self._replies.popleft()

    def _write(self, data: bytes) -> None:
        if self._lost is not None:
            raise self._lost
        self._transport.write(data)

    # One message -----------------------------------------------------------------------
    async def send(self, sender: str, recipient: str, message: bytes, *, crlf_only: bool = False) -> Reply:
        """Send one message to one recipient; its 250 reply, or an aiosmtplib exception.

        `crlf_only`: the message is `mime.to_bytes` output (see `wire_data`)."""
        if not self.usable:
            raise self._lost or aiosmtplib.SMTPServerDisconnected("connection not usable")
        content = wire_data(message, crlf_only=crlf_only)
        utf8 = b""
        if not (sender.isascii() and recipient.isascii()):
            # As aiosmtplib does: an internationalised address needs the server's SMTPUTF8.
            if not self._smtputf8:
                raise aiosmtplib.SMTPNotSupported("SMTPUTF8 is not supported by this server")
            utf8 = b" SMTPUTF8"
        envelope = b"MAIL FROM:<%s>%s\r\nRCPT TO:<%s>\r\nDATA\r\n" % (_address(sender), utf8, _address(recipient))
        self.data_written = False
        self._broken = True  # until this transaction reaches a known end
        self._write(envelope)
        mail, rcpt, data = await self._reply(), await self._reply(), await self._reply()
        if data.code == 354 and mail.code == 250 and rcpt.code in (250, 251):
            self._write(content)
            self.data_written = True
            done = await self._reply()
            self._broken = False
            if done.code != 250:
                raise aiosmtplib.SMTPDataError(done.code, done.text)
            return done
        if data.code == 354:  # a non-conforming server took DATA after a refusal: end it empty
            self._write(b".\r\n")
            await self._reply()
        await self._reset()
        if mail.code != 250:
            raise aiosmtplib.SMTPSenderRefused(mail.code, mail.text, sender)
        if rcpt.code not in (250, 251):
            refused = aiosmtplib.SMTPRecipientRefused(rcpt.code, rcpt.text, recipient)
            raise aiosmtplib.SMTPRecipientsRefused([refused])
        raise aiosmtplib.SMTPDataError(data.code, data.text)

    async def _reset(self) -> None:
        self._write(b"RSET\r\n")
        reply = await self._reply()
        self._broken = reply.code != 250

    async def quit(self) -> None:
        try:
            if self.usable:
                self._write(b"QUIT\r\n")
                await self._reply()
        except (aiosmtplib.SMTPException, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        self._broken = True
        if not self._transport.is_closing():
            self._transport.close()
