"""The SMTP backend against a real aiosmtpd server on 127.0.0.1 (tests/smtpd_sink.py).

What arrives (both parts, the headers), what never arrives (an injected header), how
the server's replies are classified (4xx transient, 5xx permanent with its text, a
closed port or a silent server transient), and that connections are pooled.
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from email.message import Message
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

import anyio
import pytest

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings
from reset_mcp.errors import InvalidInputError, PermanentDeliveryError, TransientDeliveryError
from reset_mcp.mail import OutgoingEmail
from reset_mcp.mail.mime import to_bytes
from reset_mcp.mail.smtp import SmtpBackend
from tests.conftest import CHROME_UA, client_for, reset_args, token_from_text
from tests.smtpd_sink import HOST, SmtpSink, free_port

INJECTED = re.compile(rb"(?im)^(bcc|cc|x-injected)\s*:")


def make_email(i: int = 0, *, to: str = "bob@example.com", **over: Any) -> OutgoingEmail:
    fields: dict[str, Any] = {
        "message_id": f"<msg_{i}@acme.test>",
        "idempotency_key": f"msg_{i}",
        "kind": "password_reset",
        "from_address": "auth@acme.test",
        "from_name": "Acme",
        "to": to,
        "subject": f"Reset your Acme password ({i})",
        "text": f"Hello {i}\nhttp://localhost:8000/reset?token=x.y.z\n",
        "html": f"<p>Hello {i}</p>",
        "date": datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
    }
    fields.update(over)
    return OutgoingEmail(**fields)


def text_part(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    raise AssertionError("no text part")


def header_names(msg: Message) -> set[str]:
    return {name.lower() for part in msg.walk() for name in part}


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def sink(request: pytest.FixtureRequest) -> Iterator[SmtpSink]:
    # Every test runs against a server offering PIPELINING (the backend's own pipelined
    # channel) and one that does not (aiosmtplib's sendmail).
    with SmtpSink(pipelining=request.param) as running:
        yield running


@pytest.fixture
async def smtp(sink: SmtpSink) -> AsyncIterator[SmtpBackend]:
    backend = SmtpBackend(HOST, sink.port, tls="none", timeout=5)
    yield backend
    await backend.aclose()


@pytest.fixture
async def smtp_app(settings_factory: Callable[..., Settings], clock: FakeClock, sink: SmtpSink) -> AsyncIterator[App]:
    settings = settings_factory(email_backend="smtp", smtp_host=HOST, smtp_port=sink.port, smtp_tls="none")
    async with build_app(settings, clock=clock) as built:  # the backend comes from the settings
        assert built.backend.name == "smtp"
        yield built


# What arrives ---------------------------------------------------------------------------
async def test_reset_email_arrives_with_both_parts_and_headers(smtp_app: App, sink: SmtpSink, clock: FakeClock) -> None:
    async with client_for(smtp_app) as client:
        result = await client.call_tool("request_password_reset", reset_args(name="Alice"))
        out = result.structured_content
        assert out["status"] == "sent" and out["delivery"]["backend"] == "smtp"
        status = (await client.call_tool("get_delivery_status", {"request_id": out["request_id"]})).structured_content

    [msg] = sink.messages
    [(mail_from, rcpts)] = sink.envelopes
    assert mail_from == "auth@acme.test" and rcpts == ["alice@example.com"]
    [delivery] = status["deliveries"]
    assert msg["Message-ID"] == delivery["message_id"] and re.fullmatch(r"<msg_[\w-]+@acme\.test>", msg["Message-ID"])
    assert parsedate_to_datetime(msg["Date"]) == clock.now()
    assert parseaddr(msg["From"]) == ("Acme", "auth@acme.test")
    assert msg["To"] == "alice@example.com"
    assert "Acme" in msg["Subject"] and "password" in msg["Subject"].lower()
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.get_payload()] == ["text/plain", "text/html"]
    text = text_part(msg)
    html = msg.get_payload()[1].get_payload(decode=True).decode()
    assert "Alice" in text and "Chrome 131 on Windows 10" in text and "198.51.100.7" in text
    assert "Chrome 131 on Windows 10" in html
    # The link in the email works, and was never shown to the agent.
    token = token_from_text(text)
    assert token not in str(result)
    verified = await smtp_app.service.verify_reset_token(token)
    assert verified.valid and verified.email == "alice@example.com"


@pytest.mark.parametrize("field", ["name", "location"])
async def test_crlf_in_name_or_location_is_refused_and_nothing_is_sent(
    smtp_app: App, sink: SmtpSink, field: str
) -> None:
    async with client_for(smtp_app) as client:
        result = await client.call_tool(
            "request_password_reset", reset_args(**{field: "Alice\r\nBcc: evil@attacker.test"})
        )
    assert result.is_error and field in str(result.content)
    async with smtp_app.store.transaction() as tx:
        assert await tx.outbox_counts() == {}
    assert sink.raw == [] and sink.connections == 0


@pytest.mark.parametrize(
    "user_agent",
    [
        CHROME_UA + "\r\nBcc: evil@attacker.test\r\nX-Injected: 1",
        "Evil\r\nBcc: evil@attacker.test\r\n\r\nbody",
        "Mozilla/5.0\nBcc: evil@attacker.test",
    ],
)
async def test_crlf_in_user_agent_never_reaches_a_header(smtp_app: App, sink: SmtpSink, user_agent: str) -> None:
    async with client_for(smtp_app) as client:
        result = await client.call_tool("request_password_reset", reset_args(user_agent=user_agent))
    assert result.structured_content["status"] == "sent"  # a UA is cleaned, not refused
    [raw] = sink.raw
    [(_, rcpts)] = sink.envelopes
    assert rcpts == ["alice@example.com"]
    assert not INJECTED.search(raw), raw.decode(errors="replace")
    msg = sink.messages[0]
    assert not {"bcc", "cc", "x-injected"} & header_names(msg)
    assert msg["To"] == "alice@example.com"


async def test_crlf_in_configured_names_is_cleaned_out_of_from_and_subject(
    settings_factory: Callable[..., Settings], clock: FakeClock, sink: SmtpSink
) -> None:
    settings = settings_factory(
        email_backend="smtp",
        smtp_host=HOST,
        smtp_port=sink.port,
        smtp_tls="none",
        product_name="Acme\r\nBcc: evil@attacker.test",
        sender_name="Acme Security\nX-Injected: 1",
    )
    async with build_app(settings, clock=clock) as app, client_for(app) as client:
        result = await client.call_tool("request_password_reset", reset_args())
    assert result.structured_content["status"] == "sent"
    [raw] = sink.raw
    assert not INJECTED.search(raw)
    msg = sink.messages[0]
    assert not {"bcc", "x-injected"} & header_names(msg)
    assert "\n" not in msg["From"] and "\n" not in msg["Subject"]


@pytest.mark.parametrize("field", ["to", "subject", "from_name", "message_id"])
def test_mime_refuses_a_header_value_with_a_line_break(field: str) -> None:
    with pytest.raises(InvalidInputError):
        to_bytes(make_email(**{field: "x@example.com\r\nBcc: evil@attacker.test"}))


async def test_backend_refuses_a_header_with_a_line_break_before_connecting(smtp: SmtpBackend, sink: SmtpSink) -> None:
    with pytest.raises(InvalidInputError):
        await smtp.send(make_email(subject="Hi\r\nBcc: evil@attacker.test"))
    assert sink.connections == 0


# Replies and classification -------------------------------------------------------------
@pytest.mark.parametrize(
    ("at", "reply", "error"),
    [
        ("RCPT", "451 4.3.0 Mailbox temporarily unavailable", TransientDeliveryError),
        ("RCPT", "450 4.2.1 Try again later", TransientDeliveryError),
        ("RCPT", "550 5.1.1 No such user here", PermanentDeliveryError),
        ("DATA", "452 4.3.1 Insufficient system storage", TransientDeliveryError),
        ("DATA", "554 5.7.1 Message rejected as spam", PermanentDeliveryError),
    ],
)
async def test_server_replies_are_classified_with_the_servers_text(
    smtp: SmtpBackend, sink: SmtpSink, at: str, reply: str, error: type[Exception]
) -> None:
    sink.refuse(reply, at=at)
    with pytest.raises(error) as caught:
        await smtp.send(make_email())
    code, _, text = reply.partition(" ")
    assert code in str(caught.value) and text in str(caught.value)
    assert caught.value.retry_after is None  # type: ignore[attr-defined]
    assert isinstance(caught.value.__cause__, Exception)  # the driver's error is chained
    assert sink.raw == []
    # The server recovers: the next send goes through.
    sink.refuse(None, at=at)
    await smtp.send(make_email(1))
    assert len(sink.raw) == 1


async def test_closed_port_is_transient() -> None:
    backend = SmtpBackend(HOST, free_port(), tls="none", timeout=5)
    with pytest.raises(TransientDeliveryError) as caught:
        await backend.send(make_email())
    assert "connect" in str(caught.value).lower()
    await backend.aclose()
    await backend.aclose()  # twice is harmless


async def test_a_server_that_never_answers_times_out_as_transient() -> None:
    # Accepts the TCP connection and never says a word (a hung server).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, 0))
        listener.listen(8)
        backend = SmtpBackend(HOST, listener.getsockname()[1], tls="none", timeout=0.5)
        with anyio.fail_after(5), pytest.raises(TransientDeliveryError) as caught:
            await backend.send(make_email())
        assert "timeout" in str(caught.value).lower() or "timed out" in str(caught.value).lower()
        await backend.aclose()


async def test_password_is_not_in_repr() -> None:
    backend = SmtpBackend(HOST, 2525, tls="none", username="u", password="s3cret-pass")
    assert "s3cret-pass" not in repr(backend) and "2525" in repr(backend)


# Connection pooling ---------------------------------------------------------------------
async def test_sequential_sends_reuse_one_connection(smtp: SmtpBackend, sink: SmtpSink) -> None:
    for i in range(5):
        await smtp.send(make_email(i, to=f"user{i}@example.com"))
    assert len(sink.raw) == 5 and sink.connections == 1
    assert [m["Message-ID"] for m in sink.messages] == [f"<msg_{i}@acme.test>" for i in range(5)]
    assert [rcpts for _, rcpts in sink.envelopes] == [[f"user{i}@example.com"] for i in range(5)]


async def test_concurrent_sends_stay_within_the_pool(sink: SmtpSink) -> None:
    backend = SmtpBackend(HOST, sink.port, tls="none", timeout=5, pool_size=3)
    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(backend.send, make_email(i))
    assert len(sink.raw) == 12 and 1 <= sink.connections <= 3
    before = sink.connections
    for i in range(12, 18):
        await backend.send(make_email(i))
    assert sink.connections == before  # the idle connections were reused
    await backend.aclose()


async def test_a_pooled_connection_the_server_dropped_is_replaced(smtp: SmtpBackend, sink: SmtpSink) -> None:
    await smtp.send(make_email(0))
    sink.stop()  # drops the pooled connection
    sink.start()  # same port
    await smtp.send(make_email(1))
    assert [m["Message-ID"] for m in sink.messages] == ["<msg_0@acme.test>", "<msg_1@acme.test>"]
    assert sink.connections == 2


def test_sink_starts_late_on_a_fixed_port_and_counts_only_client_connections() -> None:
    port = free_port()
    sink = SmtpSink(port=port)
    with pytest.raises(OSError), socket.create_connection((HOST, port), timeout=1):
        pass  # nothing listens yet
    with sink:
        assert sink.running and sink.port == port
        assert sink.connections == 0  # aiosmtpd's own start-up probe does not count
        with socket.create_connection((HOST, port), timeout=2) as conn:
            conn.recv(1024)
            conn.sendall(b"EHLO tester\r\n")
            conn.recv(1024)
            conn.sendall(b"QUIT\r\n")
            conn.recv(1024)
        assert sink.connections == 1
    assert not sink.running
