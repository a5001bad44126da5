"""Every email kind and the approvals page in headless Chromium, kept as screenshots (CI keeps
`artifacts/screenshots/`; see tests/browser.py), each checked for what a reader must find
there, never for pixels.

Emails come from the real flows (memory backend), in every locale: the reset email, the
"password changed" notice after the reset page consumed its link, the abuse detector's
alert after four requests from four addresses, and the overseer's notices (sent, and held
with its approve link). The page runs on a real server with keys named as an overseer
names them, and holds an email of each kind an agent can cause.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from reset_mcp.app import build_app
from reset_mcp.compose import SUPPORTED_LOCALES
from reset_mcp.compose.i18n import load_catalogs
from reset_mcp.config import Settings, load_settings
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.base import OutgoingEmail
from reset_mcp.mail.memory import MemoryBackend
from tests.browser import DESKTOP, PHONE, chromium, screenshots
from tests.conftest import CHROME_UA, SECRET, reset_args, token_from
from tests.httpserver import RunningServer, mcp_client, running_server
from tests.test_admin import in_thread
from tests.test_http import make_settings

pytestmark = pytest.mark.browser

CATALOGS = load_catalogs()
FORGOT = "https://app.acme.example/forgot-password"
RESET_URL = "https://app.acme.example/account/reset-password?token={token}"
OVERSEER = "boss@acme.test"
# Documentation addresses (RFC 5737): four in an hour make the account's risk high, and
# the context layer files them as "reserved address", which no owner may read.
IPS = ("198.51.100.23", "192.0.2.77", "203.0.113.200", "198.51.100.99")
ZONE, ZONE_ABBR = "Asia/Tokyo", "JST"


def settings(tmp: Any, **over: Any) -> Settings:
    base = {
        "data_dir": tmp, "secret": SECRET, "from_address": "auth@acme.test", "product_name": "Acme",
        "support_url": "https://acme.example/help", "forgot_password_url": FORGOT, "reset_url": RESET_URL,
        "oversight_email": OVERSEER, "oversight_timezone": "America/New_York", "public_url": "https://reset.acme.example",
    }  # fmt: skip
    return load_settings(**{**base, **over})


def emails_of(locale: str, tmp: Any) -> dict[str, OutgoingEmail]:
    """One email of each kind, sent by the real flows in `locale`."""

    async def run() -> list[OutgoingEmail]:
        backend = MemoryBackend()
        async with build_app(settings(tmp / "monitored", oversight_mode="monitored"), backend=backend) as app:
            ask = {"user_agent": CHROME_UA, "locale": locale, "timezone": ZONE}
            await app.service.request_password_reset(ResetInput("ada@example.com", "u-1", "203.0.113.42", **ask))
            link = next(m for m in backend.sent if m.kind == "password_reset")
            assert (await app.service.consume_reset_token(token_from(link), ip="203.0.113.42")).consumed
            for ip in IPS:
                await app.service.request_password_reset(ResetInput("grace@example.com", "u-7", ip, **ask))
        held = MemoryBackend()
        async with build_app(settings(tmp / "gated", oversight_mode="gated"), backend=held, approval_links=True) as app:
            await app.service.request_password_reset(ResetInput("ada@example.com", "u-1", "203.0.113.42", **ask))
        return [*backend.sent, *held.sent]

    found: dict[str, OutgoingEmail] = {}
    for email in in_thread(run):  # Playwright's sync API holds this thread's event loop
        name = (
            email.kind
            if email.kind != "oversight_notice"
            else f"oversight_notice.{'held' if '/approve' in email.html else 'sent'}"
        )
        found.setdefault(name, email)
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def tabs(browser: Any) -> Iterator[dict[str, Any]]:
    desktop = browser.new_context(viewport=DESKTOP)
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    for context in (desktop, phone):
        context.set_default_timeout(10_000)
    try:
        yield {"desktop": desktop.new_page(), "phone": phone.new_page()}
    finally:
        desktop.close()
        phone.close()


def words(locale: str, key: str) -> str:
    return CATALOGS[locale].strings[key].replace("{product}", "Acme")


def shoot(tabs: dict[str, Any], html: str, folder: Any, name: str) -> Any:
    """The email at phone and desktop width, both kept; the desktop tab stays on it."""
    for size in ("phone", "desktop"):
        tab = tabs[size]
        tab.set_content(html, wait_until="load")
        tab.screenshot(path=str(folder / f"{name}.{size}.png"), full_page=True)
        if size == "phone":  # nothing wider than the phone: no sideways scrolling
            assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], name
    return tabs["desktop"]


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_email_kind_as_its_reader_sees_it(tabs: dict[str, Any], tmp_path: Any, locale: str) -> None:
    emails = emails_of(locale, tmp_path)
    folder = screenshots("emails", locale)
    assert set(emails) == {
        "password_reset", "password_changed", "security_alert", "oversight_notice.sent", "oversight_notice.held",
    }  # fmt: skip
    pages = {name: shoot(tabs, email.html, folder, name).inner_text("body") for name, email in emails.items()}

    for name in ("password_reset", "password_changed", "security_alert"):  # the account owner's
        assert "reserved address" not in pages[name], name
        assert ZONE_ABBR in pages[name] and " UTC" not in pages[name], name

    tab = shoot(tabs, emails["security_alert"].html, folder, "security_alert")
    button = tab.locator("a.btn")
    assert button.count() == 1 and button.get_attribute("href") == FORGOT
    assert button.inner_text().strip() == words(locale, "action_change_password") and button.is_visible()
    assert words(locale, "alert_reason_suspicious_reset_activity") in pages["security_alert"]

    tab = shoot(tabs, emails["password_changed"].html, folder, "password_changed")
    assert tab.locator("a.btn").get_attribute("href") == FORGOT

    tab = shoot(tabs, emails["password_reset"].html, folder, "password_reset")
    link = RESET_URL.replace("{token}", token_from(emails["password_reset"]))
    assert tab.locator("a.btn").get_attribute("href") == link
    spelled = tab.locator("a.fine-link")
    assert spelled.inner_text().strip() == link and len(link) > 300
    size = "parseFloat(getComputedStyle(el).fontSize)"
    assert spelled.evaluate(f"el => {size}") <= 12 < tab.locator("p.p").first.evaluate(f"el => {size}")
    signoff = tab.get_by_text(words(locale, "signoff").replace("{sender}", "Acme")).bounding_box()
    assert spelled.bounding_box()["y"] > signoff["y"]  # after the whole message, signed off

    for name in ("oversight_notice.sent", "oversight_notice.held"):  # the overseer's, in English
        assert words("en", "notice_footer_reason") in pages[name]
        assert words("en", "footer_reason") not in pages[name]
    tab = shoot(tabs, emails["oversight_notice.held"].html, folder, "oversight_notice.held")
    assert "/admin/decide/" in tab.locator("a.btn").get_attribute("href")
    assert re.search(r"Decide before\s+\S.* (EST|EDT)\b", pages["oversight_notice.held"])


# The approvals page ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(
        make_settings(tmp_path_factory.mktemp("screens"), oversight_mode="gated"),
        {"support-agent": ["send"], "alice": ["approve"]},
    ) as server:
        yield server


def hold_one_of_each(srv: RunningServer) -> None:
    async def run() -> None:
        async with mcp_client(srv.url, srv.key("support-agent")) as agent:
            await agent.call_tool("request_password_reset", reset_args(email="ada@example.com", name="Ada Lovelace"))
            for ip in IPS:  # high risk: the abuse detector's own alert is held too
                await agent.call_tool("request_password_reset", reset_args(email="grace@example.com", ip=ip))
            await agent.call_tool("send_security_alert", {"email": "linus@example.com", "reason": "new_device_sign_in"})

    in_thread(run)


def test_the_approvals_page_as_the_overseer_sees_it(tabs: dict[str, Any], srv: RunningServer) -> None:
    hold_one_of_each(srv)
    folder = screenshots("admin")
    for size, tab in tabs.items():
        tab.context.clear_cookies()
        tab.goto(f"{srv.url}/admin")
        tab.fill("#key", srv.key("alice"))
        tab.click("button:has-text('Sign in')")
        tab.wait_for_selector("article.held")
        tab.screenshot(path=str(folder / f"held.{size}.png"), full_page=True)
    tab = tabs["desktop"]
    body = tab.inner_text("body")

    assert tab.inner_text("header .who") == "alice"
    assert "key:" not in body  # every key is named as the overseer named it
    cards = tab.locator("article.held")
    assert cards.count() == 7  # ada's reset, grace's four, the detector's alert, linus's alert
    assert set(cards.locator("dd.who").all_inner_texts()) == {"support-agent", "abuse detection"}

    grace = cards.filter(has_text="Password reset to grace@example.com").first
    assert grace.locator(".risk").inner_text().lower() == "high"
    assert grace.locator(".attempts li").count() == 4
    assert "asked by support-agent" in grace.locator(".attempts").inner_text()
    ada = cards.filter(has_text="Password reset to ada@example.com").first
    assert ada.locator(".risk").inner_text().lower() == "low"
    alert = cards.filter(has_text="Security alert to grace@example.com").first
    assert alert.locator("dd.who").inner_text() == "abuse detection"

    audit = tab.locator("ol.audit li").all_inner_texts()
    assert audit and not any("{" in item for item in audit)
    assert audit[0].endswith("alice signed in to this page")
    assert any("abuse detection asked for a security alert email to grace@example.com" in item for item in audit)

    previews = {"password_reset": ada.get_attribute("id"), "security_alert": alert.get_attribute("id")}
    for name, held_id in previews.items():
        tab.goto(f"{srv.url}/admin/approvals/{held_id}/preview")
        tab.screenshot(path=str(folder / f"preview.{name}.png"), full_page=True)
        assert "reserved address" not in tab.inner_text("body")
    tab.goto(f"{srv.url}/admin")
    card = tab.locator(f"#{previews['password_reset']}")
    card.locator("input[name=reason]").first.fill("confirmed by phone")
    card.locator("button:has-text('Approve and send')").click()
    tab.wait_for_url(re.compile(r"/admin\?decided="))
    tab.screenshot(path=str(folder / "decided.desktop.png"), full_page=True)
    assert "approved by alice" in tab.inner_text("p.notice")
    decided = tab.locator("ol.audit li").all_inner_texts()
    assert any("alice approved the held password reset email to ada@example.com" in item for item in decided)
