"""The pipelined SMTP channel (RFC 2920): what goes on the wire, and every way it can end.

A scripted server on loopback (asyncio, in the test's own loop) records each read it
gets, so "MAIL, RCPT and DATA left in one write" is observable; aiosmtpd (tests/smtpd_sink)
checks the same channel against a real server implementation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes
from typing import Any

import anyio
import pytest

from reset_mcp.errors import PermanentDeliveryError, TransientDeliveryError
from reset_mcp.mail.smtp import SmtpBackend
from reset_mcp.mail.smtp_pipeline import PipelinedChannel, wire_data
from tests.smtpd_sink import HOST, SmtpSink
from tests.test_smtp import make_email

pytestmark = pytest.mark.anyio

EHLO_PIPELINING = b"250-test.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"


class ScriptedServer:
    """Answers by a reply function; records every chunk read and every command line."""

    def __init__(self, reply: Callable[[str, ScriptedServer], bytes | None], ehlo: bytes = EHLO_PIPELINING) -> None:
        self.reply = reply
        self.ehlo = ehlo
        self.chunks: list[bytes] = []
        self.commands: list[str] = []
        self.messages: list[bytes] = []
        self.connections = 0
        self.in_data = False
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"220 test.example ESMTP\r\n")
        buf = b""
        try:
            while chunk := await reader.read(65536):
                self.chunks.append(chunk)
                buf += chunk
                while True:
                    if self.in_data:
                        if buf.startswith(b".\r\n"):  # an empty message
                            self.messages.append(b"")
                            buf = buf[3:]
                        else:
                            end = buf.find(b"\r\n.\r\n")
                            if end < 0:
                                break
                            self.messages.append(buf[: end + 2])
                            buf = buf[end + 5 :]
                        self.in_data = False
                        answer = self.reply("<message>", self)
                    else:
                        nl = buf.find(b"\r\n")
                        if nl < 0:
                            break
                        line, buf = buf[:nl].decode(), buf[nl + 2 :]
                        self.commands.append(line)
                        verb = line[:4].upper()
                        if verb == "EHLO":
                            answer = self.ehlo
                        elif verb == "QUIT":
                            writer.write(b"221 bye\r\n")
                            await writer.drain()
                            writer.close()
                            return
                        else:
                            answer = self.reply(line, self)
                            if verb == "DATA" and answer is not None and answer.startswith(b"354"):
                                self.in_data = True
                    if answer is None:  # the script drops the connection here
                        writer.close()
                        return
                    writer.write(answer)
                await writer.drain()
        except ConnectionError:
            pass


def accept_all(line: str, server: ScriptedServer) -> bytes | None:
    verb = line[:4].upper()
    if verb == "DATA":
        return b"354 go ahead\r\n"
    return b"250 ok\r\n"


@pytest.fixture
async def backend_for() -> AsyncIterator[Callable[[ScriptedServer], SmtpBackend]]:
    made: list[SmtpBackend] = []

    def make(server: ScriptedServer) -> SmtpBackend:
        backend = SmtpBackend(HOST, server.port, tls="none", timeout=2)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.aclose()


# On the wire --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param("asyncio", id="asyncio"), pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")],
)
async def test_envelope_goes_out_in_one_write_and_the_message_in_one_more(backend_for: Any) -> None:
    async with ScriptedServer(accept_all) as server:
        backend = backend_for(server)
        await backend.send(make_email(0))
        await backend.send(make_email(1, to="carol@example.com"))
    envelope_chunks = [c for c in server.chunks if c.startswith(b"MAIL FROM")]
    assert envelope_chunks == [
        b"MAIL FROM:<auth@acme.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n",
        b"MAIL FROM:<auth@acme.test>\r\nRCPT TO:<carol@example.com>\r\nDATA\r\n",
    ]
    assert server.connections == 1  # the connection was reused
    assert [message_from_bytes(m)["To"] for m in server.messages] == ["bob@example.com", "carol@example.com"]


async def test_a_server_without_pipelining_gets_one_command_at_a_time(backend_for: Any) -> None:
    async with ScriptedServer(accept_all, ehlo=b"250-test.example\r\n250 8BITMIME\r\n") as server:
        await backend_for(server).send(make_email(0))
    assert not any(b"\r\nRCPT" in c for c in server.chunks)
    assert [c.split()[0] for c in server.commands[1:4]] == ["MAIL", "RCPT", "DATA"]
    assert len(server.messages) == 1


async def test_pipelining_can_be_turned_off() -> None:
    async with ScriptedServer(accept_all) as server:
        backend = SmtpBackend(HOST, server.port, tls="none", timeout=2, pipelining=False)
        await backend.send(make_email(0))
        await backend.aclose()
    assert not any(b"\r\nRCPT" in c for c in server.chunks)


def test_wire_data_dot_stuffs_and_fixes_line_ends() -> None:
    assert wire_data(b"a\r\n.b\r\n..c\r\n") == b"a\r\n..b\r\n...c\r\n.\r\n"
    assert wire_data(b".first\r\nlast") == b"..first\r\nlast\r\n.\r\n"
    assert wire_data(b"lone\nfeed\rand\r\n.dot") == b"lone\r\nfeed\r\nand\r\n..dot\r\n.\r\n"
    assert wire_data(b"") == b"\r\n.\r\n"


async def test_a_body_line_starting_with_a_dot_arrives_intact_at_a_real_server() -> None:
    with SmtpSink() as sink:
        backend = SmtpBackend(HOST, sink.port, tls="none", timeout=5)
        await backend.send(make_email(0, text=".leading dot\n.\n..two dots\nend"))
        assert isinstance(backend._idle[0], PipelinedChannel)  # the pipelined path was taken
        await backend.aclose()
        body = sink.messages[0].get_payload()[0].get_payload(decode=True).decode()
    assert ".leading dot\n.\n..two dots\nend" in body.replace("\r\n", "\n")


# Refusals and failures ------------------------------------------------------------------
def refuse(at: str, reply: bytes) -> Callable[[str, ScriptedServer], bytes | None]:
    def script(line: str, server: ScriptedServer) -> bytes | None:
        if line.upper().startswith(at.upper()):
            return reply
        if line[:4].upper() == "DATA":
            # A conforming server refuses DATA when no recipient was accepted.
            rcpt_refused = at == "RCPT" or at == "MAIL"
            return b"554 no valid recipients\r\n" if rcpt_refused else b"354 go ahead\r\n"
        return b"250 ok\r\n"

    return script


@pytest.mark.parametrize(
    ("at", "reply", "error", "text"),
    [
        ("MAIL", b"451 4.3.0 sender check deferred\r\n", TransientDeliveryError, "451"),
        ("MAIL", b"553 5.1.8 sender domain refused\r\n", PermanentDeliveryError, "553"),
        ("RCPT", b"550-5.1.1 no such user\r\n550 5.1.1 see the docs\r\n", PermanentDeliveryError, "no such user"),
        ("RCPT", b"452 4.2.2 mailbox full\r\n", TransientDeliveryError, "mailbox full"),
        ("<message>", b"554 5.7.1 rejected as spam\r\n", PermanentDeliveryError, "spam"),
        ("DATA", b"451 4.3.0 try later\r\n", TransientDeliveryError, "try later"),
    ],
)
async def test_refusals_are_classified_and_the_connection_is_reset_and_reused(
    backend_for: Any, at: str, reply: bytes, error: type[Exception], text: str
) -> None:
    async with ScriptedServer(refuse(at, reply)) as server:
        backend = backend_for(server)
        with pytest.raises(error) as caught:
            await backend.send(make_email(0))
        assert text in str(caught.value)
        if at != "<message>":
            assert server.messages == []  # nothing was delivered
            assert server.commands[-1] == "RSET"  # the transaction was reset, not left half-way
            assert backend._idle and backend._idle[0].usable  # and the connection is kept
        server.reply = accept_all
        await backend.send(make_email(1))
        assert server.connections == 1  # the same connection carried the next message
    assert len(server.messages) == (1 if at != "<message>" else 2)


async def test_a_non_conforming_354_after_a_refused_rcpt_sends_no_message(backend_for: Any) -> None:
    def script(line: str, server: ScriptedServer) -> bytes | None:
        if line.startswith("RCPT"):
            return b"550 5.1.1 unknown\r\n"
        if line.startswith("DATA"):
            return b"354 go ahead anyway\r\n"
        if line == "<message>":
            return b"250 empty message taken\r\n"
        return b"250 ok\r\n"

    async with ScriptedServer(script) as server:
        with pytest.raises(PermanentDeliveryError, match="unknown"):
            await backend_for(server).send(make_email(0))
    assert server.messages == [b""]  # only the empty message that ended DATA, never the email
    assert server.commands[-1] == "RSET"


async def test_a_drop_after_the_message_went_out_is_not_resent(backend_for: Any) -> None:
    # The server takes the message and vanishes before answering: it may have it, so a
    # silent resend could deliver it twice. The dispatcher retries later, visibly.
    def script(line: str, server: ScriptedServer) -> bytes | None:
        return None if line == "<message>" else accept_all(line, server)

    async with ScriptedServer(script) as server:
        with pytest.raises(TransientDeliveryError, match="connection"):
            await backend_for(server).send(make_email(0))
    assert server.connections == 1 and len(server.messages) == 1


async def test_an_idle_connection_the_server_closed_is_replaced_once(backend_for: Any) -> None:
    async with ScriptedServer(accept_all) as server:
        backend = backend_for(server)
        await backend.send(make_email(0))
        channel = backend._idle[0]
        assert isinstance(channel, PipelinedChannel)
        channel._transport.close()  # as if the server had timed the idle link out
        await anyio.sleep(0.05)
        await backend.send(make_email(1))
    assert server.connections == 2 and len(server.messages) == 2


async def test_an_idle_link_the_server_spoke_on_is_not_reused(backend_for: Any) -> None:
    # A "421 closing" between transactions must not be read as the next MAIL's reply.
    async with ScriptedServer(accept_all) as server:
        backend = backend_for(server)
        await backend.send(make_email(0))
        channel = backend._idle[0]
        channel.data_received(b"421 4.4.2 idle too long, closing\r\n")
        assert not channel.usable
        await backend.send(make_email(1))
    assert server.connections == 2 and len(server.messages) == 2


async def test_a_server_that_stops_answering_mid_transaction_times_out(backend_for: Any) -> None:
    def script(line: str, server: ScriptedServer) -> bytes | None:
        return b"" if line.startswith("RCPT") else accept_all(line, server)  # RCPT: silence

    async with ScriptedServer(script) as server:
        backend = SmtpBackend(HOST, server.port, tls="none", timeout=0.3)
        with anyio.fail_after(5), pytest.raises(TransientDeliveryError, match=r"(?i)timed out"):
            await backend.send(make_email(0))
        assert backend._idle == []  # a connection in an unknown state is not pooled
        await backend.aclose()


async def test_replies_split_across_reads_and_several_in_one_read(backend_for: Any) -> None:
    async with ScriptedServer(accept_all) as server:
        backend = backend_for(server)
        await backend.send(make_email(0))
    channel = PipelinedChannel.__new__(PipelinedChannel)
    PipelinedChannel.__init__(channel, _NullTransport(), 1.0)  # type: ignore[arg-type]
    channel.data_received(b"250 ok\r\n250-first li")
    channel.data_received(b"ne\r\n250 second line\r\n35")
    channel.data_received(b"4 go\r\n")
    assert [await channel._reply() for _ in range(3)] == [
        (250, "ok"),
        (250, "first line\nsecond line"),
        (354, "go"),
    ]


async def test_an_endless_reply_is_cut_off(backend_for: Any) -> None:
    channel = PipelinedChannel(_NullTransport(), 1.0)  # type: ignore[arg-type]
    channel.data_received(b"250-" + b"x" * 70_000)
    with pytest.raises(Exception, match="too long"):
        await channel._reply()
    assert not channel.usable


@pytest.mark.parametrize("address", ["bob@example.com\r\nRCPT TO:<eve@evil.test>", "bob <x>@example.com", "a\x00@b.c"])
async def test_an_address_that_could_inject_a_command_is_refused_before_anything_is_written(address: str) -> None:
    # mime.to_bytes refuses line breaks in headers first; the envelope is checked again
    # on its own, since it is the channel that writes raw SMTP commands.
    transport = _NullTransport()
    channel = PipelinedChannel(transport, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot carry"):
        await channel.send("auth@acme.test", address, b"Subject: x\r\n\r\nhi\r\n")
    with pytest.raises(ValueError, match="cannot carry"):
        await channel.send(address, "bob@example.com", b"Subject: x\r\n\r\nhi\r\n")
    assert transport.written == []


async def test_an_internationalised_address_needs_smtputf8(backend_for: Any) -> None:
    async with ScriptedServer(accept_all) as server:  # no SMTPUTF8 offered
        with pytest.raises(TransientDeliveryError, match="SMTPUTF8"):
            await backend_for(server).send(make_email(0, to="jöra@example.com"))
    ehlo = b"250-test.example\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n"
    async with ScriptedServer(accept_all, ehlo=ehlo) as server:
        await backend_for(server).send(make_email(0, to="jöra@example.com"))
    assert "MAIL FROM:<auth@acme.test> SMTPUTF8" in server.commands
    assert "RCPT TO:<jöra@example.com>" in server.commands


class _NullTransport:
    def __init__(self) -> None:
        self.closed = False
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


# STARTTLS and AUTH stay aiosmtplib's; the channel carries on inside TLS -------------------
# uvicorn runs the server on uvloop (a dependency), whose transports are not
# asyncio.Transport subclasses: the take-over must work on both loops.
LOOPS = [pytest.param("asyncio", id="asyncio"), pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")]


@pytest.mark.parametrize("anyio_backend", LOOPS)
@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
async def test_starttls_and_auth_then_messages_inside_tls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, pipelining: bool
) -> None:
    import ssl

    import trustme
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from tests.smtpd_sink import RecordingHandler, free_port

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # how a user trusts a private CA, too

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"mailer", b"s3cret")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    handler = RecordingHandler(pipelining=pipelining)
    port = free_port()
    controller = Controller(
        handler,
        hostname=HOST,
        port=port,
        tls_context=server_ctx,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        backend = SmtpBackend(HOST, port, tls="starttls", username="mailer", password="s3cret", timeout=5)
        for i in range(3):
            await backend.send(make_email(i, to=f"user{i}@example.com"))
        channel = backend._idle[0]
        assert isinstance(channel, PipelinedChannel) == pipelining
        if pipelining:
            assert isinstance(channel._transport.get_extra_info("ssl_object"), ssl.SSLObject)
        await backend.aclose()
        assert [rcpts for _, rcpts in handler.envelopes] == [[f"user{i}@example.com"] for i in range(3)]
        # One connection (aiosmtpd starts a new Session after STARTTLS, same peer), three messages.
        assert len({session.peer for session in handler.sessions}) == 1

        wrong = SmtpBackend(HOST, port, tls="starttls", username="mailer", password="nope", timeout=5)
        with pytest.raises(PermanentDeliveryError, match="535"):
            await wrong.send(make_email(9))
        await wrong.aclose()
        assert len(handler.raw) == 3
    finally:
        controller.stop()
