"""What an account owner and the overseer read: the alert's action, the automatic reason in
the owner's language, times in the reader's time zone in every kind, no internal network
label in an owner's email, the overseer's notice worded for the overseer, and the long
reset link in the fine print. The same emails in Chromium, as pictures: test_screens.py."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from reset_mcp.app import App, build_app
from reset_mcp.cli.doctor import run_doctor
from reset_mcp.compose import SUPPORTED_LOCALES, Branding, RequestContext
from reset_mcp.compose.i18n import LOCALES_DIR, load_catalogs
from reset_mcp.config import Settings
from reset_mcp.context import SPECIAL_NETWORKS
from reset_mcp.deps import Caller
from reset_mcp.emails.security_alert import AUTOMATIC_REASON
from reset_mcp.errors import ConfigError
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.base import OutgoingEmail
from reset_mcp.mail.memory import MemoryBackend
from tests.conftest import CHROME_UA, client_for, token_from
from tests.kinds import composer as make_composer
from tests.kinds import samples

CATALOGS = load_catalogs()
FORGOT = "https://acme.example/forgot-password"
SUPPORT = "https://acme.example/help"
BRANDING = Branding(product_name="Acme", support_url=SUPPORT, forgot_password_url=FORGOT)
OWNER_KINDS = ("password_reset", "password_changed", "security_alert")
BUTTON_RE = re.compile(r'<a class="btn"[^>]*? href="([^"]+)"[^>]*>([^<]+)</a>')
# Documentation addresses (RFC 5737): "reserved address" to the context layer.
RESERVED_IPS = ("198.51.100.23", "192.0.2.77", "203.0.113.200", "198.51.100.99")


def words(locale: str, key: str, product: str = "Acme") -> str:
    return CATALOGS[locale].strings[key].replace("{product}", product)


def sent(backend: MemoryBackend, kind: str) -> list[OutgoingEmail]:
    return [m for m in backend.sent if m.kind == kind]


@asynccontextmanager
async def app_with(
    settings_factory: Callable[..., Settings], backend: MemoryBackend, **over: object
) -> AsyncIterator[App]:
    async with build_app(settings_factory(**over), backend=backend) as app:
        yield app


def reset(email: str = "ada@example.com", ip: str = "203.0.113.42", **over: str) -> ResetInput:
    return ResetInput(email=email, user_id="u-1842", ip=ip, user_agent=CHROME_UA, **over)  # type: ignore[arg-type]


# The security alert's action -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["security_alert", "password_changed"])
def test_the_owner_gets_a_button_to_the_forgot_password_page_else_to_support(kind: str) -> None:
    with_page = make_composer(BRANDING).sample(kind)
    assert BUTTON_RE.findall(with_page.html) == [(FORGOT, "Change your password")]
    assert f"Change your password: {FORGOT}" in with_page.text

    support_only = make_composer(replace(BRANDING, forgot_password_url=None)).sample(kind)
    assert BUTTON_RE.findall(support_only.html) == [(SUPPORT, "Contact Acme support")]
    assert f"Contact Acme support: {SUPPORT}" in support_only.text

    neither = make_composer(replace(BRANDING, forgot_password_url=None, support_url=None)).sample(kind)
    assert BUTTON_RE.findall(neither.html) == []  # the advice alone; `doctor` says why


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_the_button_is_worded_in_the_owners_language(locale: str) -> None:
    email = make_composer(BRANDING).sample("security_alert", locale=locale)
    assert BUTTON_RE.findall(email.html) == [(FORGOT, words(locale, "action_change_password"))]


def test_a_forgot_password_url_must_be_https_except_on_loopback(settings_factory: Callable[..., Settings]) -> None:
    assert settings_factory(forgot_password_url="http://localhost:3000/forgot").forgot_password_url
    with pytest.raises(ConfigError) as refused:
        settings_factory(forgot_password_url="http://app.example.com/forgot")
    assert "RESET_MCP_FORGOT_PASSWORD_URL: must be an https:// URL" in str(refused.value)


def test_doctor_says_when_the_alert_has_no_button(
    settings_factory: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    run_doctor(settings_factory())
    assert "security alerts advise changing the password but have no button" in capsys.readouterr().out
    run_doctor(settings_factory(support_url=SUPPORT))
    assert "no button" not in capsys.readouterr().out


# The automatic alert's reason ------------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
async def test_the_automatic_alert_says_why_in_a_sentence_of_the_owners_language(
    settings_factory: Callable[..., Settings], backend: MemoryBackend, locale: str
) -> None:
    async with app_with(settings_factory, backend) as app:
        for ip in RESERVED_IPS:  # four requests from four addresses in an hour: high risk
            await app.service.request_password_reset(reset("grace@example.com", ip, locale=locale))
    (alert,) = sent(backend, "security_alert")
    sentence = words(locale, "alert_reason_suspicious_reset_activity")
    assert sentence.endswith(".") and sentence in alert.text and sentence in alert.html.replace("&#39;", "'")
    for part in (alert.text, alert.html):
        assert AUTOMATIC_REASON not in part
        assert "reset requests in" not in part and "different IP addresses" not in part  # the detector's notes


# Times in the reader's time zone, in every kind ------------------------------------------


async def test_every_kind_shows_times_in_its_readers_time_zone(
    settings_factory: Callable[..., Settings], backend: MemoryBackend
) -> None:
    over = {
        "oversight_mode": "monitored",
        "oversight_email": "boss@acme.test",
        "oversight_timezone": "America/New_York",
    }
    async with app_with(settings_factory, backend, **over) as app:
        await app.service.request_password_reset(reset(locale="de", timezone="Asia/Tokyo", name="Ada Lovelace"))
        # The reset page passes neither language nor zone: the notice follows the reset email.
        assert (await app.service.consume_reset_token(token_from(sent(backend, "password_reset")[0]))).consumed
        async with client_for(app) as agent:
            answer = await agent.call_tool(
                "send_security_alert",
                {
                    "email": "ada@example.com",
                    "reason": "new_device_sign_in",
                    "locale": "fr",
                    "timezone": "Europe/Paris",
                },
            )
            assert answer.structured_content and answer.structured_content["status"] == "sent"
    (reset_email,) = sent(backend, "password_reset")
    (changed,) = sent(backend, "password_changed")
    (alert,) = sent(backend, "security_alert")
    assert "Uhr JST" in reset_email.text
    assert "Uhr JST" in changed.text and "Hallo Ada Lovelace" in changed.text  # the reset's zone, language, name
    assert " CET" in alert.text and "Ce qui s’est passé" in alert.text  # its attempts, in the agent's zone
    for email in (reset_email, changed, alert):
        assert " UTC" not in email.text and " UTC" not in email.html


async def test_the_overseers_notice_shows_the_decision_deadline_in_the_overseers_zone(
    settings_factory: Callable[..., Settings], backend: MemoryBackend
) -> None:
    over = {"oversight_mode": "gated", "oversight_email": "boss@acme.test", "oversight_timezone": "America/New_York"}
    async with app_with(settings_factory, backend, **over) as app:
        await app.service.request_password_reset(reset(timezone="Asia/Tokyo"))
    (notice,) = sent(backend, "oversight_notice")
    deadline = re.search(r"Decide before: (.+)", notice.text)
    assert deadline and deadline.group(1).endswith(" EST"), notice.text


async def test_the_overseers_notice_names_the_key_that_asked(
    settings_factory: Callable[..., Settings], backend: MemoryBackend
) -> None:
    async with app_with(settings_factory, backend, oversight_mode="gated", oversight_email="boss@acme.test") as app:
        _, key = await app.service.keys.create("support-agent", ["send"])
        await app.service.request_password_reset(reset(), Caller(f"key:{key.id}"))
    (notice,) = sent(backend, "oversight_notice")
    assert f"Requested by: support-agent (key:{key.id})" in notice.text


def test_an_unknown_overseer_time_zone_is_refused_at_start(settings_factory: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError) as refused:
        settings_factory(oversight_timezone="Mars/Olympus_Mons")
    assert "RESET_MCP_OVERSIGHT_TIMEZONE: must be an IANA timezone name" in str(refused.value)


# No internal label for an owner ----------------------------------------------------------

UNLOCATABLE = [name for name in (*SPECIAL_NETWORKS, "loopback") if name != "private network"]


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("name", UNLOCATABLE)
def test_an_owner_never_reads_an_internal_network_label(locale: str, name: str) -> None:
    composer = make_composer(BRANDING)
    context = RequestContext(at=samples()["password_reset"].context.at, ip="192.0.2.1", device="", location=name)
    data = samples()
    rendered = [
        composer.render("password_reset", replace(data["password_reset"], context=context), locale=locale),
        composer.render("password_changed", replace(data["password_changed"], context=context), locale=locale),
        composer.render("security_alert", replace(data["security_alert"], attempts=(context,)), locale=locale),
    ]
    phrase = words(locale, "location_unlocatable")
    for email in rendered:
        for part in (email.text, email.html):
            assert name.lower() not in part.lower()
        assert phrase in email.text


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_a_private_network_is_named_as_one_in_the_owners_language(locale: str) -> None:
    context = RequestContext(
        at=samples()["password_reset"].context.at, ip="10.0.0.5", device="", location="private network"
    )
    email = make_composer(BRANDING).render(
        "password_reset", replace(samples()["password_reset"], context=context), locale=locale
    )
    assert words(locale, "location_private") in email.text


async def test_a_reset_from_a_documentation_address_reads_unlocatable(
    settings_factory: Callable[..., Settings], backend: MemoryBackend
) -> None:
    async with app_with(settings_factory, backend) as app:
        await app.service.request_password_reset(reset(ip="198.51.100.7"))
    (email,) = sent(backend, "password_reset")
    assert "reserved address" not in email.text + email.html
    assert "Approximate location: unknown (an address we cannot locate)" in email.text


# The overseer's notice -------------------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_the_overseers_notice_never_speaks_of_activity_on_their_account(locale: str) -> None:
    composer = make_composer(BRANDING)
    notice = composer.sample("oversight_notice", locale=locale)
    for part in (notice.text, notice.html):
        assert words(locale, "footer_reason") not in part
        assert words(locale, "notice_footer_reason") in part
    for kind in OWNER_KINDS:  # the owner's emails keep theirs
        assert words(locale, "footer_reason") in composer.sample(kind, locale=locale).text


# The long link, in the fine print ---------------------------------------------------------


async def test_the_reset_links_fallback_copy_sits_small_and_apart_after_the_message(
    settings_factory: Callable[..., Settings], backend: MemoryBackend
) -> None:
    async with app_with(
        settings_factory, backend, reset_url="https://app.example.com/account/reset?token={token}"
    ) as app:
        await app.service.request_password_reset(reset())
    (email,) = sent(backend, "password_reset")
    link = f"https://app.example.com/account/reset?token={token_from(email)}"
    assert len(link) > 300
    html = email.html
    shown = html.index(f"\n{link}</a>")  # the link spelled out (not the button's href)
    assert html.index("The Acme team") < shown  # after the whole message, signed off
    paragraph = html[html.rindex("<p", 0, shown) : shown]
    assert 'class="footer-p fine-print"' in paragraph
    footer = html[html.rindex("<td", 0, shown) :]
    assert footer.startswith('<td class="footer"') and "font-size: 12px" in footer.split(">", 1)[0]
    assert html.count(link) == 3  # the button, the fallback's href and its text


# The catalogs ----------------------------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_a_locale_file_names_each_message_once(locale: str) -> None:
    # json.loads keeps the last of two equal keys without a word: a merge that adds a
    # message twice would make one of them dead text.
    def no_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
        keys = [key for key, _ in pairs]
        assert len(keys) == len(set(keys)), sorted({k for k in keys if keys.count(k) > 1})
        return dict(pairs)

    json.loads((LOCALES_DIR / f"{locale}.json").read_text("utf-8"), object_pairs_hook=no_repeats)
