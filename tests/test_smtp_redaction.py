"""An SMTP server that quotes the refused message's link back (issue 22 item 8).

A real aiosmtpd server on loopback answers DATA with a 5xx (or 4xx) reply that quotes
the reset link, the bare JWT, or a cut-off piece of it, as some filtering MTAs do. None
of it may reach the tool result, the outbox row, the request's record, the audit log or
a log line: the SMTP backend redacts as the HTTP providers do (`mail/redact.py`).
"""

from __future__ import annotations

import base64
import email
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings
from reset_mcp.errors import PermanentDeliveryError, TransientDeliveryError
from reset_mcp.mail.redact import redact_reason, redact_text
from reset_mcp.mail.smtp import SmtpBackend
from tests.conftest import TOKEN_RE, client_for, reset_args
from tests.smtpd_sink import HOST, RecordingHandler, SmtpSink
from tests.test_smtp import make_email

LINK_RE = re.compile(r"https?://\S+token=[A-Za-z0-9_.-]+")


class QuotingHandler(RecordingHandler):
    """Refuses every message at DATA, quoting (a piece of) the link it carries."""

    def __init__(self, *, pipelining: bool, quote: Callable[[str], str], code: str = "550 5.7.1") -> None:
        super().__init__(pipelining=pipelining)
        self.quote, self.code = quote, code
        self.links: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        msg = email.message_from_bytes(envelope.original_content or b"")
        text = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
        link = LINK_RE.search(text.get_payload(decode=True).decode())
        assert link is not None
        self.links.append(link.group(0))
        return f"{self.code} refused: {self.quote(link.group(0))}"


QUOTES: dict[str, Callable[[str], str]] = {
    "the link": lambda link: f"blocked URL <{link}> found",
    "the bare token": lambda link: f"suspicious token {TOKEN_RE.search(link).group(1)}",  # type: ignore[union-attr]
    "header and payload": lambda link: "jwt " + ".".join(TOKEN_RE.search(link).group(1).split(".")[:2]),  # type: ignore[union-attr]
    "cut mid-payload": lambda link: link[: link.index(".", link.index("token=")) + 50],  # 49 of the payload
}


def secrets_of(link: str) -> list[str]:
    """What must not appear anywhere: the link, the token, each of its parts, its jti."""
    token = TOKEN_RE.search(link).group(1)  # type: ignore[union-attr]
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    # Long enough pieces that a match is not chance: the payload's first 24 characters
    # are the same for every token ('{"sub":...'), so the payload is checked from its middle.
    return [link, token, header + "." + payload[:10], payload[20:], signature, claims["jti"]]


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def pipelining(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture(params=list(QUOTES), ids=list(QUOTES))
def quoting_sink(request: pytest.FixtureRequest, pipelining: bool) -> Iterator[SmtpSink]:
    handler = QuotingHandler(pipelining=pipelining, quote=QUOTES[request.param])
    with SmtpSink(handler=handler) as sink:
        yield sink


@pytest.fixture
async def smtp_app(
    settings_factory: Callable[..., Settings], clock: FakeClock, quoting_sink: SmtpSink
) -> AsyncIterator[App]:
    settings = settings_factory(email_backend="smtp", smtp_host=HOST, smtp_port=quoting_sink.port, smtp_tls="none")
    async with build_app(settings, clock=clock) as built:
        yield built


async def test_a_refusal_quoting_the_link_leaves_no_trace_of_it(
    smtp_app: App, quoting_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with client_for(smtp_app) as client:
        result = await client.call_tool("request_password_reset", reset_args())
        out = result.structured_content
        status = await client.call_tool("get_delivery_status", {"request_id": out["request_id"]})
    handler = quoting_sink.handler
    assert isinstance(handler, QuotingHandler)
    [link] = handler.links  # the server did see and quote the link
    [delivery] = status.structured_content["deliveries"]
    assert delivery["status"] == "failed" and delivery["last_error"].startswith("SMTP 550")
    assert "refused" in delivery["last_error"]  # the server's own words stay

    async with smtp_app.store.reading() as tx:
        rows = await tx.outbox_for_send(out["request_id"])
        send = await tx.get_send(out["request_id"])
        audit = await tx.list_audit(limit=1000)
        events = await tx.list_events(email="alice@example.com", limit=1000)
    everything = "\n".join(
        [
            json.dumps(out),
            str(result.content),
            json.dumps(status.structured_content),
            str(status.content),
            *(repr(row) for row in rows),
            repr(send),
            *(json.dumps(entry.detail) + entry.subject for entry in audit),
            *(repr(event) for event in events),
            *(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")),  # not the sink's
        ]
    )
    [failed] = [entry for entry in audit if entry.action == "delivery_failed"]
    assert failed.detail["error"] == delivery["last_error"]  # the audit log has the (redacted) reason
    for secret in secrets_of(link):
        assert secret not in everything


@pytest.mark.parametrize("code", ["451 4.7.1", "554 5.7.1"])
async def test_the_backend_redacts_before_it_cuts(pipelining: bool, code: str) -> None:
    # A long quote: cut at 300 characters after redaction, never mid-token before it.
    token = "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiJ1LTEiLCJqdGkiOiJ4In0" * 6 + ".c2lnbmF0dXJl"
    link = f"https://app.example.com/reset?token={token}"
    handler = QuotingHandler(pipelining=pipelining, quote=lambda _: "x" * 200 + link, code=code)
    mail = make_email(text=f"Hello\n{link}\n")
    with SmtpSink(handler=handler) as sink:
        backend = SmtpBackend(HOST, sink.port, tls="none", timeout=5, password="hunter2-secret")
        expected = PermanentDeliveryError if code.startswith("5") else TransientDeliveryError
        with pytest.raises(expected) as caught:
            await backend.send(mail)
        await backend.aclose()
    text = str(caught.value)
    assert len(text) <= 300 and "eyJ" not in text and "token=" + token[:5] not in text


def test_redaction_rules() -> None:
    token = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1LTEiLCJqdGkiOiJhYmMifQ.sig_-123"
    mail = make_email(text=f"Open https://app.example.com/r?token={token}&x=1 now", html="")
    assert redact_reason(f"quoted https://app.example.com/r?token={token}&x=1 end", email=mail) == "quoted [link] end"
    # Cut short, in pieces, or under another parameter name: still gone.
    assert "eyJ" not in redact_text(f"a {token[:30]} b {token.split('.')[1]}")
    assert redact_text("https://x.test/a?sig=abc123&id=4") == "https://x.test/a?sig=[redacted]&id=4"
    assert redact_text("see ?token=opaque-value-99") == "see ?token=[redacted]"
    assert redact_reason("AUTH failed for aHVudGVyMg==", secrets=["aHVudGVyMg=="]) == "AUTH failed for [redacted]"
    assert redact_reason("a\r\nb   c") == "a b c"
    assert len(redact_reason("y" * 1000)) == 300
