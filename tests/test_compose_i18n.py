"""Locales: the BCP 47 fallback chain, complete catalogs, plurals, times in a timezone."""

from __future__ import annotations

import json
import re
import string
from datetime import UTC, datetime

import pytest

from reset_mcp.compose import SUPPORTED_LOCALES, resolve_locale
from reset_mcp.compose.i18n import (
    LOCALES_DIR,
    Formatter,
    HtmlTranslator,
    TextTranslator,
    load_catalogs,
    resolve_timezone,
)
from reset_mcp.emails.registry import BUILTIN

CATALOGS = load_catalogs()
RAW = {tag: json.loads((LOCALES_DIR / f"{tag}.json").read_text("utf-8")) for tag in SUPPORTED_LOCALES}


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("de-AT", "de"),
        ("de", "de"),
        ("DE_at", "de"),
        ("fr-CA", "fr"),
        ("es-419", "es"),
        ("zh-Hant-TW", "en"),
        ("pt-BR", "en"),
        ("en-GB", "en"),
        ("de-AT,de;q=0.9,en;q=0.8", "de"),
        ("", "en"),
        (None, "en"),
        ("!!garbage!!", "en"),
        ("de-" + "x" * 100, "en"),
        ("\u202ede", "en"),
        ("de-AT-\r\nBcc", "en"),
    ],
)
def test_fallback_chain(tag, expected):
    assert resolve_locale(tag) == expected


def test_supported_locales():
    assert SUPPORTED_LOCALES[0] == "en"
    assert {"en", "de", "fr", "es"} <= set(SUPPORTED_LOCALES)


KIND_DEFAULTS = {f"kind_{k.name}": k.label for k in BUILTIN} | {
    key: m for k in BUILTIN for key, m in k.messages.items()
}


def placeholders(message: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(message) if name}


@pytest.mark.parametrize("tag", SUPPORTED_LOCALES)
def test_every_catalog_is_complete_and_uses_the_same_placeholders(tag):
    en, other = RAW["en"], RAW[tag]
    # English is the file's messages plus the kinds' own (their labels, as `kind_<name>`).
    english = {**KIND_DEFAULTS, **en["strings"]}
    if tag == "en":
        assert not set(en["strings"]) & set(KIND_DEFAULTS)  # one home for an English label: its kind
    else:
        assert set(other["strings"]) == set(english)  # no silent English fallback in shipped locales
    for key, message in english.items():
        assert placeholders({**english, **other["strings"]}[key]) == placeholders(message), key
    assert set(other["plurals"]) == set(en["plurals"])
    for key, forms in other["plurals"].items():
        assert set(forms) == {"one", "other"} and all("{n}" in f for f in forms.values()), key
    assert len(other["months"]) == 12
    assert placeholders(other["datetime"]) <= {"day", "month", "year", "hour", "hour12", "minute", "ampm", "tz"}


@pytest.mark.parametrize(
    ("tag", "n", "expected"),
    [
        ("en", 1, "1 minute"),
        ("en", 15, "15 minutes"),
        ("de", 1, "1 Minute"),
        ("de", 15, "15 Minuten"),
        ("fr", 0, "0 minute"),
        ("fr", 1, "1 minute"),
        ("fr", 2, "2 minutes"),
        ("es", 1, "1 minuto"),
        ("es", 15, "15 minutos"),
    ],
)
def test_plural_forms(tag, n, expected):
    assert CATALOGS[tag].plural("minutes", n) == expected


def test_durations_use_the_largest_even_unit():
    f = Formatter(CATALOGS["en"], UTC)
    assert [f.duration_text(m) for m in (1, 15, 60, 90, 120, 1440, 2880)] == [
        "1 minute",
        "15 minutes",
        "1 hour",
        "90 minutes",
        "2 hours",
        "1 day",
        "2 days",
    ]
    assert Formatter(CATALOGS["de"], UTC).duration_text(120) == "2 Stunden"


WHEN = datetime(2026, 7, 4, 21, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tag", "tz", "expected"),
    [
        ("en", None, "July 4, 2026, 9:05 PM UTC"),
        ("en", "America/Los_Angeles", "July 4, 2026, 2:05 PM PDT"),
        ("de", "Europe/Berlin", "4. Juli 2026, 23:05 Uhr CEST"),
        ("fr", "Europe/Paris", "4 juillet 2026 à 23:05 CEST"),
        ("es", "America/Bogota", "4 de julio de 2026, 16:05 UTC-5"),
        ("en", "Asia/Tokyo", "July 5, 2026, 6:05 AM JST"),
        ("en", "Not/AZone", "July 4, 2026, 9:05 PM UTC"),
    ],
)
def test_times_in_the_recipients_timezone(tag, tz, expected):
    assert Formatter(CATALOGS[tag], resolve_timezone(tz)).datetime_text(WHEN) == expected


def test_naive_datetimes_are_taken_as_utc():
    f = Formatter(CATALOGS["en"], resolve_timezone("Europe/London"))
    assert f.datetime_text(WHEN.replace(tzinfo=None)) == f.datetime_text(WHEN)


def test_translators_escape_html_and_fill_branding_once():
    brand = {"product": "A&B <Co>", "sender": "A&B", "support_email": "x@y.z"}
    html = HtmlTranslator(CATALOGS["en"], brand)
    text = TextTranslator(CATALOGS["en"], brand)
    assert html.reset_subject == "Reset your A&amp;B &lt;Co&gt; password"
    assert text.reset_subject == "Reset your A&B <Co> password"
    assert html("greeting_name", name="<b>") == "Hi &lt;b&gt;,"
    assert text("greeting_name", name="{name} {0}") == "Hi {name} {0},"
    assert text.constants()["signoff"] == "The A&B team"
    assert "reset_expiry" not in text.constants()  # it needs arguments
    brace = TextTranslator(CATALOGS["en"], {"product": "{x}", "sender": "s", "support_email": ""})
    assert brace.reset_subject == "Reset your {x} password"
    assert brace("changed_intro", time="noon") == "The password of your {x} account was changed on noon."
    with pytest.raises(KeyError, match="no message"):
        text("no_such_key")


def test_no_message_contains_markup():
    for tag in SUPPORTED_LOCALES:
        for message in CATALOGS[tag].strings.values():
            assert not re.search(r"[<>]", message)
