"""The composer: every kind in every locale, facts in both parts, hostile input, subjects.

Template loading, overrides and golden files are in `test_compose_templates.py`;
locales, plurals and timezones in `test_compose_i18n.py`.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from markupsafe import escape

from reset_mcp.compose import SUPPORTED_LOCALES, Branding, Composer, RequestContext, clean_header_text
from reset_mcp.compose.i18n import Formatter, load_catalogs, resolve_timezone
from reset_mcp.emails.oversight_notice import OversightNoticeData
from reset_mcp.emails.password_changed import PasswordChangedData
from reset_mcp.emails.security_alert import AlertFacts, SecurityAlertData
from reset_mcp.errors import ConfigError, InvalidInputError
from reset_mcp.vocab import AlertReason
from tests.kinds import KINDS, samples
from tests.kinds import composer as make_composer

BRANDING = Branding(
    product_name="Acme Cloud",
    sender_name="Acme Security",
    logo_url="https://acme.example/logo.png",
    primary_color="#0f766e",
    support_url="https://acme.example/help",
    support_email="help@acme.example",
    postal_address="Acme Inc.\n1 Main Street\nSpringfield",
)
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CATALOGS = load_catalogs()
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
HOSTILE = '<script>alert("x")</script> O\'Brien\r\nBcc: evil@example.com \u202egnp.exe\u2066 '


@pytest.fixture(scope="module")
def composer() -> Composer:
    c = make_composer(BRANDING)
    c.preload()
    return c


def fmt(locale: str, tz: str | None = None) -> Formatter:
    return Formatter(CATALOGS[locale], resolve_timezone(tz))


def facts_of(kind: str, locale: str) -> list[str]:
    """What each kind's sample must say, in both parts."""
    data = samples()[kind]
    f = fmt(locale)
    if kind == "password_reset":
        ctx = data.context
        return [
            data.reset_url,
            data.report_url,
            f.duration_text(15),
            f.datetime_text(data.expires_at),
            f.datetime_text(ctx.at),
            ctx.ip,
            ctx.device,
            ctx.location,
        ]
    if kind == "security_alert":
        reason = CATALOGS[locale].strings[f"alert_reason_{data.reason}"].replace("{product}", "Acme Cloud")
        facts = data.facts
        out = [
            reason,
            "2FA",
            facts.ip,
            facts.device,
            f.datetime_text(facts.at),
            CATALOGS[locale].strings["alert_facts"],
        ]
        for a in data.attempts:
            out += [a.ip, a.device, f.datetime_text(a.at)]
        return [*out, "Berlin, Germany", "Lagos, Nigeria", CATALOGS[locale].strings["location_unknown"]]
    if kind == "password_changed":
        ctx = data.context
        return [f.datetime_text(data.changed_at), ctx.ip, ctx.device, ctx.location]
    if kind == "oversight_digest":
        held, sent = data.items
        strings = CATALOGS[locale].strings
        return [
            held.recipient, held.requested_by, held.approval_id, f.datetime_text(held.expires_at),
            sent.recipient, sent.requested_by, f.datetime_text(sent.at), strings["decision_held"],
            strings["decision_sent"], str(len(data.items) + data.more),
        ]  # fmt: skip
    return [
        data.recipient,
        data.summary,
        data.requested_by,
        data.approval_id,
        data.approve_url,
        data.reject_url,
        f.datetime_text(data.expires_at),
        CATALOGS[locale].strings["decision_held"],
    ]


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_in_every_locale_with_its_facts_in_both_parts(composer, kind, locale):
    email = composer.sample(kind, locale=locale)
    assert f'<html lang="{locale}"' in email.html
    for fact in facts_of(kind, locale):
        assert fact in email.text, fact
        assert str(escape(fact)) in email.html, fact
    assert "Acme Cloud" in email.subject
    # The product's support is the account owner's help; the overseer's notice and digest point to none.
    supported = kind not in ("oversight_notice", "oversight_digest")
    assert ("help@acme.example" in email.text and "mailto:help@acme.example" in email.html) is supported
    assert "1 Main Street" in email.text and "1 Main Street" in email.html
    assert email.text.endswith("\n") and "\n\n\n" not in email.text


def test_locales_really_differ(composer):
    subjects = {composer.sample("password_reset", locale=tag).subject for tag in SUPPORTED_LOCALES}
    assert len(subjects) == len(SUPPORTED_LOCALES)
    assert {"en", "de", "fr", "es"} <= set(SUPPORTED_LOCALES)
    assert "15 Minuten" in composer.sample("password_reset", locale="de-AT").text
    assert "15 minutos" in composer.sample("password_reset", locale="es-MX").text


def test_reset_email_says_link_expiry_who_and_what_to_do(composer):
    email = composer.sample("password_reset")
    text = email.text
    assert "expires in 15 minutes (January 1, 2026, 12:15 PM UTC)" in text
    assert "Who asked" in text and "203.0.113.42" in text and "Chrome 131 on Windows 10" in text
    assert "If you did not ask for this" in text
    assert "https://app.example.com/reset/report?request=sample" in text
    # real link text on the button, and the bare URL as a fallback
    assert re.search(
        r'<a class="btn"[^>]*href="https://app\.example\.com/reset\?token=[^"]+"[^>]*>Choose a new', email.html
    )
    assert "click here" not in email.html.lower()


def test_reset_without_optional_fields(composer):
    data = replace(samples()["password_reset"], to_name=None, report_url=None)
    email = composer.render("password_reset", data)
    assert "Hello," in email.text and "Report a request" not in email.text
    assert "Report a request" not in email.html


def test_reset_unknown_context_labels_are_localised(composer):
    ctx = RequestContext(at=NOW, ip="10.0.0.5", device="", location="private network")
    data = replace(samples()["password_reset"], context=ctx)
    email = composer.render("password_reset", data, locale="fr")
    assert "réseau privé" in email.text and "appareil inconnu" in email.text


def test_html_is_a_responsive_dark_mode_friendly_table_layout(composer):
    html = composer.sample("password_reset").html
    assert html.startswith("<!DOCTYPE html>")
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert "@media only screen and (max-width: 620px)" in html
    assert '<table class="container" role="presentation"' in html
    assert re.search(r'<div class="preheader" style="display: none;[^"]*">Use this link within 15 minutes', html)
    # CSS is inlined: the static rules are gone from <style>, present on the elements
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    assert ".h1 {" not in style.replace("  .h1", "")
    assert re.search(r'<h1 class="h1" style="margin: 0 0 16px 0;', html)
    assert html.index('<meta charset="utf-8">') < html.index("<style>")
    assert "background-color: #0f766e" in html  # the brand colour on the button
    assert '<img class="logo"' in html and 'alt="Acme Cloud"' in html


def test_builtin_templates_are_inlined_ahead_of_time(composer):
    assert composer.inlines_at_render is False


def test_security_alert_lists_attempts_and_advises_2fa(composer):
    attempts = tuple(
        RequestContext(at=NOW - timedelta(minutes=i), ip=f"198.51.100.{i}", device="curl 8", location="unknown")
        for i in range(12)
    )
    email = composer.render("security_alert", SecurityAlertData(reason=AlertReason.OTHER, attempts=attempts))
    assert "198.51.100.9" in email.text and "198.51.100.10" not in email.text
    assert "…and 2 more attempts" in email.text and "…and 2 more attempts" in email.html
    assert "two-factor authentication" in email.text and "two-factor authentication" in email.html


def test_password_changed_with_and_without_context(composer):
    full = composer.sample("password_changed", locale="de")
    assert "wurde am 1. Januar 2026, 12:00 Uhr UTC geändert" in full.text
    assert "203.0.113.42" in full.text
    bare = composer.render("password_changed", PasswordChangedData(changed_at=NOW))
    assert "Where the change came from" not in bare.text and "IP address" not in bare.html
    assert "If you did not change your password" in bare.text


def test_oversight_notice_links_only_when_given_and_never_a_reset_link(composer):
    held = composer.sample("oversight_notice")
    assert "Approve and send this email" in held.html and "Reject this email" in held.html
    data = OversightNoticeData(
        kind="password_reset",
        recipient="bob@example.com",
        decision="sent",
        summary="Sent https://app.example.com/reset?token=SECRET to bob, see www.example.com/x",
        requested_by="agent x",
    )
    sent = composer.render("oversight_notice", data)
    for part in (sent.text, sent.html):
        # A summary stored before `given` existed is free text: withheld whole when it carries a link.
        assert "SECRET" not in part and "www.example.com" not in part and "[withheld: it looks like a link" in part
        assert "Approve" not in part and "Reject" not in part
    assert sent.subject == "Acme Cloud: an email was sent (monitored)"
    other = composer.render("oversight_notice", replace(data, decision="weird", kind="custom_kind"))
    assert "custom_kind" in other.text and "weird" in other.text
    assert other.subject == "Acme Cloud: oversight notice about an email"


def test_subjects_stay_short_in_every_locale_with_a_long_product_name():
    long_name = "Extraordinarily Long Product Name Incorporated International " * 5
    c = make_composer(Branding(product_name=long_name + "\r\nBcc: x@evil.example"))
    c.preload()
    for locale in SUPPORTED_LOCALES:
        for kind in KINDS:
            subject = c.sample(kind, locale=locale).subject
            assert len(subject) < 78, subject
            assert "\r" not in subject and "\n" not in subject and "Bcc" not in subject
            assert "Extraordinarily" in subject
        for decision in ("held", "sent", "other"):
            data = replace(samples()["oversight_notice"], decision=decision)
            assert len(c.render("oversight_notice", data, locale=locale).subject) < 78


def hostile_data(kind: str):
    big = HOSTILE + "A" * 5000
    ctx = RequestContext(at=NOW, ip="203.0.113.9\r\n<b>", device=big, location=big)
    data = samples()[kind]
    if kind == "password_reset":
        return replace(data, to_name=big, context=ctx)
    if kind == "security_alert":
        return replace(data, to_name=big, facts=AlertFacts(at=NOW, ip=big, device=big, location=big), attempts=(ctx,))
    if kind == "password_changed":
        return replace(data, to_name=big, context=ctx)
    if kind == "oversight_digest":
        item = replace(data.items[0], recipient=big, requested_by=big, kind=big, decision=big, approval_id=big)
        return replace(data, items=(item,))
    given = {key: big for key in ("user_id", "name", "ip", "device", "location")}
    return replace(data, recipient=big, summary=big, requested_by=big, kind=big, decision=big, given=given)


@pytest.mark.parametrize("locale", ["en", "de"])
@pytest.mark.parametrize("kind", KINDS)
def test_hostile_input_is_escaped_or_cut_everywhere(composer, kind, locale):
    email = composer.render(kind, hostile_data(kind), locale=locale)
    for part in (email.subject, email.text, email.html):
        assert "<script>" not in part
        assert not any(ch in part for ch in BIDI)
        assert "\r" not in part
        assert "A" * 1000 not in part  # nothing comes through uncut
    assert "\n" not in email.subject and len(email.subject) < 78
    assert "\nBcc:" not in email.text
    if kind == "oversight_digest":
        # The overseer's own digest names each email's kind, recipient and requester: escaped.
        assert "&lt;script&gt;" in email.html and "‹script›" in email.text
    elif kind == "oversight_notice":
        # What the overseer must see (kind, recipient, decision) is shown escaped and cut; what
        # the requester gave is withheld when it carries an address.
        assert "&lt;script&gt;" in email.html and "‹script›" in email.text
        assert email.text.count(CATALOGS[locale].strings["notice_withheld"]) >= 5
    else:
        # A name with markup and an address in it is not a name, nor is such a label a device
        # or a place: each is left out (the email greets without a name, says "unknown").
        for part in (email.text, email.html):
            assert "evil@example.com" not in part and "Brien" not in part and "script" not in part


def test_text_part_carries_the_same_facts_as_html(composer):
    data = replace(
        samples()["password_reset"],
        reset_url="https://app.example.com/r?t=abc&u=1",
        ttl_minutes=30,
        expires_at=NOW + timedelta(minutes=30),
        context=RequestContext(at=NOW, ip="2001:db8::7", device="Firefox 133 on Linux", location="Lyon, France"),
    )
    email = composer.render("password_reset", data, locale="fr", timezone="Europe/Paris")
    for fact in (
        "https://app.example.com/r?t=abc&u=1",
        "2001:db8::7",
        "Firefox 133 on Linux",
        "Lyon, France",
        "30 minutes",
        "1 janvier 2026 à 13:30 CET",
    ):
        assert fact in email.text
        assert str(escape(fact)) in email.html


def test_invalid_timezone_falls_back_to_utc(composer):
    data = samples()["password_reset"]
    for tz in ("Mars/Olympus_Mons", "../../etc/passwd", "", "x" * 500, None):
        assert "12:15 PM UTC" in composer.render("password_reset", data, timezone=tz).text
    assert "7:15 AM EST" in composer.render("password_reset", data, timezone="America/New_York").text
    assert "18:00 Uhr UTC+5:45" in composer.render("password_reset", data, locale="de", timezone="Asia/Kathmandu").text


def test_bad_urls_and_ttl_are_refused(composer):
    data = samples()["password_reset"]
    for url in ("javascript:alert(1)", "//evil.example/x", "https://", "https://a b.example/", ""):
        with pytest.raises(InvalidInputError):
            composer.render("password_reset", replace(data, reset_url=url))
    with pytest.raises(InvalidInputError):
        composer.render("password_reset", replace(data, report_url="data:text/html,hi"))
    with pytest.raises(InvalidInputError):
        composer.render("password_reset", replace(data, ttl_minutes=0))
    with pytest.raises(InvalidInputError):
        composer.render("oversight_notice", replace(samples()["oversight_notice"], approve_url="javascript:x"))


def test_sample_of_unknown_kind_lists_the_kinds(composer):
    with pytest.raises(InvalidInputError) as info:
        composer.sample("newsletter")
    for kind in KINDS:
        assert kind in str(info.value)


def test_branding_is_validated():
    c = make_composer(
        Branding(
            product_name="X",
            primary_color="red",
            logo_url="javascript:alert(1)",
            support_email="not an email",
            support_url="ftp://x.example",
        )
    )
    html = c.sample("password_reset").html
    assert "#2563eb" in html and "javascript" not in html and "<img" not in html
    assert "not an email" not in html and "ftp://" not in html
    light = make_composer(Branding(product_name="X", primary_color="#FE0"))
    html = light.sample("password_reset").html
    assert "background-color: #ffee00" in html and "color: #111827" in html  # dark text on yellow
    with pytest.raises(ConfigError):
        make_composer(Branding(product_name=" \u202e\r\n "))


def test_clean_header_text():
    assert clean_header_text("a\r\nb\tc  d", 50) == "a b c d"
    assert clean_header_text("\u202eevil\u2066.exe\u200b", 50) == "evil.exe"
    assert clean_header_text("x" * 100, 10) == "x" * 9 + "…"
    assert clean_header_text("  padded  ", 50) == "padded"
    assert clean_header_text("\x00\x07\x1b[31mred", 50) == "[31mred"
    assert clean_header_text("anything", 0) == ""
    assert clean_header_text("\u00a0nbsp\u2028line", 50) == "nbsp line"
    assert len(clean_header_text("\u202e" * 20000 + "tail", 10)) <= 10


def test_render_is_fast(composer):
    """Subject + text + HTML of a reset email; the budget is 0.5 ms, we assert a loose bound."""
    data = samples()["password_reset"]
    composer.render("password_reset", data, locale="de", timezone="Europe/Berlin")
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(200):
            composer.render("password_reset", data, locale="de", timezone="Europe/Berlin")
        best = min(best, (time.perf_counter() - start) / 200)
    assert best < 0.002, f"{best * 1e6:.0f} us per reset email"
