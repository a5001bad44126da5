"""No agent-written words in any email (issue 20, part 2).

The property: no string an agent supplies that contains a URL, a bare domain, an email
address or a phone number appears in any part (subject, text, HTML) of any email kind.
Hostile values go into every text parameter of every tool that leads to an email (a
reset, a security alert, the password-changed notice after consuming a link, and the
overseer's notice about each, monitored), through the service as the tools call it.

And: older stored alert payloads (free-text reason and details) still render, safely.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.provisional import domains, urls

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.emails import security_alert
from reset_mcp.emails.kind import MASK
from reset_mcp.flows.request import FactsInput, ResetInput
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.store.records import OutboxRow, SendRecord
from reset_mcp.untrusted import looks_like_contact_or_link
from reset_mcp.vocab import AlertReason
from tests.conftest import SECRET, TOKEN_RE, token_from

KINDS = {"password_reset", "security_alert", "password_changed", "oversight_notice"}
PUBLIC_IP = "81.2.69.160"
phones = st.from_regex(r"\+?[0-9]{2,4}([ .-]?[0-9]{2,4}){2,3}", fullmatch=True)
contacts = st.one_of(domains(), urls(), st.emails(), phones)
around = st.sampled_from(["", "Visit ", "Hi ", "URGENT: use ", "call ", "Lisbon, "])
after = st.sampled_from(["", " now", " instead", ", Portugal", "/1.0"])


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BlockingPortal, App, MemoryBackend]]:
    from reset_mcp.config import load_settings

    over: dict[str, Any] = {
        "data_dir": tmp_path_factory.mktemp("words"), "secret": SECRET, "from_address": "auth@acme.test",
        "product_name": "Acme", "oversight_mode": "monitored", "oversight_email": "boss@acme.test",
        "rate_limit_account_per_hour": 10**6, "rate_limit_ip_per_hour": 10**6, "caller_sends_per_hour": 10**6,
    }  # fmt: skip
    backend = MemoryBackend()
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(build_app(load_settings(**over), clock=FakeClock(), backend=backend)) as app,
    ):
        yield portal, app, backend


def parts(mail: Any) -> list[str]:
    # The reset link is ours; its token is random base64 that a short payload could match.
    return [TOKEN_RE.sub("token=LINK", p) for p in (mail.subject, mail.text, html.unescape(mail.html))]


ADDRESSES = count()


async def every_kind(app: App, backend: MemoryBackend, hostile: str) -> list[Any]:
    """Each tool that leads to an email, every text parameter hostile; the emails it caused."""
    before = len(backend.sent)
    app.clock.advance(hours=2)  # type: ignore[attr-defined]  # each round under the overseer's hourly notice cap
    email = f"user{next(ADDRESSES)}@users.example.com"
    ua = f"{hostile}/1.0 CFNetwork/1240 Darwin/20 ({hostile})"
    inp = ResetInput(email, hostile, PUBLIC_IP, ua, name=hostile, location=hostile, locale="en", timezone="UTC")
    out = await app.service.request_password_reset(inp)
    assert out.status == "sent", out
    token = token_from([m for m in backend.sent[before:] if m.kind == "password_reset"][-1])
    facts = FactsInput(at=datetime(2026, 1, 1, tzinfo=UTC), ip=PUBLIC_IP, user_agent=ua, location=hostile)
    for reason in (AlertReason.NEW_DEVICE_SIGN_IN, AlertReason.OTHER):
        alert = await app.service.contacts.send_security_alert(email=email, user_id=hostile, reason=reason, facts=facts)
        assert alert.status == "sent", alert
    consumed = await app.service.consume_reset_token(token, ip=PUBLIC_IP, user_agent=ua, locale="en")
    assert consumed.consumed
    return backend.sent[before:]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=around, payload=contacts, suffix=after)
def test_no_agent_supplied_link_domain_address_or_number_reaches_any_email(
    harness: tuple[BlockingPortal, App, MemoryBackend], prefix: str, payload: str, suffix: str
) -> None:
    portal, app, backend = harness
    payload = payload.strip()
    assume(looks_like_contact_or_link(payload) and "\n" not in payload and len(payload) <= 150)
    # Our own fixed words cannot count against the property (a generated "acme.test", say).
    assume(payload.lower() not in "users.example.com boss@acme.test auth@acme.test localhost:8000")
    mails = portal.call(every_kind, app, backend, f"{prefix}{payload}{suffix}")
    assert {m.kind for m in mails} == KINDS
    for mail in mails:
        for part in parts(mail):
            assert payload.lower() not in part.lower(), (mail.kind, payload)


def test_the_property_would_catch_what_went_through_before(harness: tuple[BlockingPortal, App, MemoryBackend]) -> None:
    """The issue's own examples, each of which used to reach an inbox."""
    portal, app, backend = harness
    for hostile in (
        "URGENT: this link is broken, use https://acme-login.example.net/reset instead",
        "acme-login.example.net",
        "Lisbon, see acme-login.example.net",
        "call +1 415 555 0100",
    ):
        mails = portal.call(every_kind, app, backend, hostile)
        for mail in mails:
            for part in parts(mail):
                assert "acme-login.example.net" not in part and "555 0100" not in part, mail.kind


def test_old_free_text_alert_rows_render_safely(harness: tuple[BlockingPortal, App, MemoryBackend]) -> None:
    """Rows written before reason codes: the automatic alert keeps its words, any other reads
    `other`, and free text (reason or details) is never shown."""
    _, app, _ = harness
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for reason, expected in (
        ("suspicious password reset activity", "several times in a short while"),
        ("Your account is locked, unlock at https://acme-login.example.net", "security checks noticed"),
    ):
        payload = {"reason": reason, "details": "call +1 415 555 0100 or visit acme-login.example.net", "attempts": []}
        send = SendRecord.new(security_alert.KIND.name, "a@acme.test", None, "agent", payload, now)
        row = OutboxRow(
            id="msg_1", send_id=send.id, kind=send.kind, recipient=send.recipient, message_id="<m@x>",
            status="pending", created_at=now, next_attempt_at=now, payload=payload,
        )  # fmt: skip
        for rendered in (app.messages.preview(send, now), app.messages.build(row, now)):
            text = f"{rendered.subject} {rendered.text} {rendered.html}"
            assert expected in text and "acme-login" not in text and "555 0100" not in text
            assert MASK not in text
