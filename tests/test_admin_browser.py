"""The approvals page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright),
against a real server that delivers through a real SMTP server (tests/smtpd_sink.py): sign in,
see a held reset, approve it and find it delivered; reject another; a wrong key is refused;
a forged form post without the CSRF token is refused; approval from the notice email's link.

Marked `browser`; Chromium and where screenshots go: tests/browser.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email.message import Message
from typing import Any

import httpx
import pytest

from tests.browser import PHONE, chromium
from tests.conftest import token_from_text
from tests.httpserver import RunningServer, running_server
from tests.smtpd_sink import HOST, SmtpSink
from tests.test_admin import HTTP, JWT_RE, OVERSEER, approval, hold
from tests.test_http import make_settings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, sink: SmtpSink) -> Iterator[RunningServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("admin-browser"), oversight_mode="gated", oversight_email=OVERSEER,
        email_backend="smtp", smtp_host=HOST, smtp_port=sink.port, smtp_tls="none",
    )  # fmt: skip
    with running_server(settings, {"agent": ["send"], "admin": ["approve"]}) as server:
        yield server


@pytest.fixture(scope="module")
def phone(browser: Any) -> Iterator[Any]:
    """One phone-sized tab for the module (a new context per test costs more than the test)."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(phone: Any) -> Any:
    phone.context.clear_cookies()  # each test starts signed out, as a new browser would
    return phone


def text_part(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no text part")


def mails(sink: SmtpSink, to: str, kind: str, timeout: float = 0.0) -> list[Message]:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in sink.messages if m["To"] == to and m["X-Reset-MCP-Kind"] == kind]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def sign_in(page: Any, srv: RunningServer, key: str) -> Any:
    page.goto(f"{srv.url}/admin")
    page.fill("#key", key)
    with page.expect_response(f"{srv.url}/admin/signin") as answer:
        page.click("button:has-text('Sign in')")
    page.wait_for_load_state()
    return answer.value


def test_sign_in_see_a_held_reset_approve_it_and_it_is_delivered(page: Any, srv: RunningServer, sink: SmtpSink) -> None:
    held = hold(srv, "alice@browser.example")
    assert sign_in(page, srv, srv.key("admin")).status == 303
    assert page.inner_text("h1").startswith("Held emails")
    card = page.locator(f"#{held['approval_id']}")
    assert "alice@browser.example" in card.inner_text() and "Password reset" in card.inner_text()
    assert card.locator(".who").first.inner_text() == "agent"  # the key's name, its id in the tooltip
    card.locator("summary").click()
    email_text = card.locator("pre").inner_text()
    assert "•••MASKED•••" in email_text and not JWT_RE.search(page.content())
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
    assert not mails(sink, "alice@browser.example", "password_reset")

    card.locator("input[name=reason]").first.fill("user confirmed by phone")
    card.locator("button:has-text('Approve and send')").click()
    page.wait_for_url(re.compile(r"/admin\?decided="))
    assert "approved" in page.inner_text("p.notice") and "user confirmed by phone" in page.inner_text("p.notice")
    delivered = mails(sink, "alice@browser.example", "password_reset", timeout=10)
    assert len(delivered) == 1 and token_from_text(text_part(delivered[0]))
    assert approval(srv, held["approval_id"])["decided_by"] == f"key:{srv.key_id('admin')}"


def test_reject_another(page: Any, srv: RunningServer, sink: SmtpSink) -> None:
    held = hold(srv, "bob@browser.example")
    sign_in(page, srv, srv.key("admin"))
    card = page.locator(f"#{held['approval_id']}")
    reject = card.locator("button:has-text('Reject')")
    reject.click()  # the reason is required: the browser does not send the form
    assert page.url == f"{srv.url}/admin" and approval(srv, held["approval_id"])["status"] == "pending"
    card.locator("input[name=reason]").nth(1).fill("not requested by the user")
    reject.click()
    page.wait_for_url(re.compile(r"/admin\?decided="))
    assert "rejected" in page.inner_text("p.notice")
    assert page.locator(f"#{held['approval_id']}").count() == 0
    assert approval(srv, held["approval_id"])["status"] == "rejected"
    assert not mails(sink, "bob@browser.example", "password_reset")


def test_a_wrong_key_is_refused(page: Any, srv: RunningServer) -> None:
    answer = sign_in(page, srv, "rmcp_abcdefgh_not-a-real-key")
    assert answer.status == 401
    assert "not valid" in page.inner_text("[role=alert]") and page.locator("#key").count() == 1
    assert not any(c["name"] == "rmcp_admin" for c in page.context.cookies())
    answer = sign_in(page, srv, srv.key("agent"))  # a real key, but not an overseer's
    assert answer.status == 403 and "approve" in page.inner_text("[role=alert]")


def test_a_forged_post_without_the_csrf_token_is_refused(page: Any, srv: RunningServer) -> None:
    held = hold(srv, "carol@browser.example")
    sign_in(page, srv, srv.key("admin"))
    cookie = next(c for c in page.context.cookies() if c["name"] == "rmcp_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read the session
    url = f"{srv.url}/admin/approvals/{held['approval_id']}/approve"
    with httpx.Client(cookies={"rmcp_admin": cookie["value"]}, verify=False) as forger:
        assert forger.post(url, data={"reason": "forged"}).status_code == 403
        assert forger.post(url, data={"reason": "forged", "csrf": "x" * 43}).status_code == 403
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    with httpx.Client(cookies={"rmcp_admin": cookie["value"]}, verify=False) as forger:
        other_site = {"Origin": "http://127.0.0.1:1"}
        assert forger.post(url, data={"csrf": token}, headers=other_site).status_code == 403
    assert approval(srv, held["approval_id"])["status"] == "pending"


def test_approve_from_the_notice_email_link(page: Any, srv: RunningServer, sink: SmtpSink) -> None:
    held = hold(srv, "dave@browser.example")
    notices = [m for m in mails(sink, OVERSEER, "oversight_notice", timeout=10) if held["approval_id"] in text_part(m)]
    link = re.search(r"(http\S+/approve\?\S+)", text_part(notices[0]))
    assert link
    page.goto(link.group(1))
    assert "Nothing has been decided yet" in page.inner_text("main")
    assert approval(srv, held["approval_id"])["status"] == "pending"
    page.click("button:has-text('Approve and send')")
    page.wait_for_load_state()
    assert page.inner_text("h1") == "Approved"
    assert approval(srv, held["approval_id"])["decided_by"] == f"email:{OVERSEER}"
    assert len(mails(sink, "dave@browser.example", "password_reset", timeout=10)) == 1
    page.goto(link.group(1))
    assert page.inner_text("h1") == "Already decided"
    assert HTTP.get(f"{srv.url}/healthz").json() == {"status": "ok"}
