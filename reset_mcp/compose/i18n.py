"""Locales without a gettext toolchain: one JSON catalog per language.

`locales/<lang>.json` holds `strings` (keyed messages with `{named}` arguments),
`plurals` (`one`/`other` forms per unit), month names and a datetime pattern. A
locale's catalog is laid over English, so a missing message falls back to English.
`resolve_locale` walks the BCP 47 chain (`de-AT` -> `de` -> `en`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT_LOCALE = "en"


def _discover() -> tuple[str, ...]:
    found = sorted(p.stem for p in LOCALES_DIR.glob("*.json"))
    return (DEFAULT_LOCALE, *(tag for tag in found if tag != DEFAULT_LOCALE))


SUPPORTED_LOCALES: tuple[str, ...] = _discover()
_BY_LOWER = {tag.lower(): tag for tag in SUPPORTED_LOCALES}
_TAG_RE = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


@lru_cache(maxsize=512)
def resolve_locale(tag: str | None) -> str:
    """The best supported locale for a BCP 47 tag: `de-AT` -> `de` -> `en`.

    Accepts `_` for `-`, any case, and the first entry of an Accept-Language list
    (`de-AT,de;q=0.9`). Anything unparseable gives English.
    """
    if not tag:
        return DEFAULT_LOCALE
    first = tag.split(",", 1)[0].split(";", 1)[0].strip().replace("_", "-")
    if len(first) > 64 or not _TAG_RE.fullmatch(first):
        return DEFAULT_LOCALE
    parts = first.lower().split("-")
    while parts:
        hit = _BY_LOWER.get("-".join(parts))
        if hit:
            return hit
        parts.pop()
    return DEFAULT_LOCALE


@lru_cache(maxsize=256)
def resolve_timezone(name: str | None) -> tzinfo:
    """The IANA zone for `name`; None, empty or unknown names give UTC (never raise)."""
    if not name or len(name) > 64:
        return UTC
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return UTC


def _plural_rule(rule: str):
    if rule == "n<=1":  # French: 0 and 1 take the singular
        return lambda n: "one" if n in (0, 1) else "other"
    return lambda n: "one" if n == 1 else "other"


class Catalog:
    """The messages, plural forms and date pattern of one locale."""

    def __init__(self, tag: str, data: dict[str, Any]) -> None:
        self.tag = tag
        self.dir: str = data.get("dir", "ltr")
        self.strings: dict[str, str] = data["strings"]
        self.plurals: dict[str, dict[str, str]] = data["plurals"]
        self.months: list[str] = data["months"]
        self.datetime_pattern: str = data["datetime"]
        self.am_pm: tuple[str, str] = tuple(data.get("am_pm", ("AM", "PM")))  # type: ignore[assignment]
        self.rule = _plural_rule(data.get("plural_rule", "n==1"))

    def plural(self, key: str, n: int) -> str:
        forms = self.plurals[key]
        return forms.get(self.rule(n), forms["other"]).format(n=n)


def load_catalogs(defaults: Mapping[str, str] | None = None) -> dict[str, Catalog]:
    """Every locale, each laid over English so a missing message is English.

    `defaults`: English messages an email kind brings along, under the locale files
    (which may translate them, or override the English)."""
    raw = {tag: json.loads((LOCALES_DIR / f"{tag}.json").read_text("utf-8")) for tag in SUPPORTED_LOCALES}
    base = raw[DEFAULT_LOCALE]
    english = {**(defaults or {}), **base["strings"]}
    catalogs = {}
    for tag, data in raw.items():
        merged = {**base, **data}
        merged["strings"] = {**english, **data.get("strings", {})}
        merged["plurals"] = {**base["plurals"], **data.get("plurals", {})}
        catalogs[tag] = Catalog(tag, merged)
    return catalogs


def _fill(message: str, values: dict[str, str]) -> str:
    """Substitute branding placeholders now; the rest stay `{named}` for a call."""
    for name, value in values.items():
        message = message.replace("{" + name + "}", value.replace("{", "{{").replace("}", "}}"))
    return message


def _final(message: str) -> str | None:
    """The message as shown when it needs no argument, else None."""
    try:
        return message.format()
    except (KeyError, IndexError):
        return None


class TextTranslator:
    """The messages of one locale for the text part, branding already filled in.

    In a template, `t.key` is a message without arguments (fast: an attribute),
    `t("key", name=...)` fills the remaining `{named}` arguments, and
    `t.plural("minutes", 15)` picks the plural form. Branding placeholders
    (`{product}`, `{sender}`, `{support_email}`) are filled once, here.
    """

    # Tells Jinja2 up front that `t(...)` wants no context (saves two failed lookups a call).
    jinja_pass_arg = None

    def __init__(self, catalog: Catalog, branding: dict[str, str]) -> None:
        self.catalog = catalog
        values = {name: self._escape(value) for name, value in branding.items()}
        self._messages = {key: _fill(self._escape(msg), values) for key, msg in catalog.strings.items()}
        for key, message in self._messages.items():
            final = _final(message)
            setattr(self, key, self._wrap(final if final is not None else message))

    @staticmethod
    def _escape(value: str) -> str:
        return value

    @staticmethod
    def _wrap(value: str) -> object:
        return value

    def constants(self) -> dict[str, str]:
        """Every message that needs no argument, as shown (for compile-time folding)."""
        return {key: final for key, msg in self._messages.items() if (final := _final(msg)) is not None}

    def __call__(self, key: str, **args: object) -> object:
        try:
            message = self._messages[key]
        except KeyError:
            raise KeyError(f"no message {key!r} in the locale catalogs") from None
        return self._wrap(message.format(**{k: self._escape(v) for k, v in args.items()}))

    def plural(self, key: str, n: int) -> object:
        return self._wrap(self._escape(self.catalog.plural(key, n)))


TextTranslator.__call__.jinja_pass_arg = None  # type: ignore[attr-defined]


class HtmlTranslator(TextTranslator):
    """The same for HTML: the message and every argument escaped, the result Markup."""

    @staticmethod
    def _escape(value: object) -> str:  # type: ignore[override]
        return str(escape(value))

    @staticmethod
    def _wrap(value: str) -> Markup:
        # Safe: the message and every argument went through `_escape` above.
        return Markup(value)  # noqa: S704


class Formatter:
    """Dates and durations for one locale in one timezone."""

    __slots__ = ("catalog", "tz")

    def __init__(self, catalog: Catalog, tz: tzinfo) -> None:
        self.catalog = catalog
        self.tz = tz

    def datetime_text(self, value: datetime) -> str:
        if value.tzinfo is None:  # the contract says aware UTC; be lenient
            value = value.replace(tzinfo=UTC)
        local = value.astimezone(self.tz)
        am, pm = self.catalog.am_pm
        return self.catalog.datetime_pattern.format(
            day=local.day,
            month=self.catalog.months[local.month - 1],
            year=local.year,
            hour=f"{local.hour:02d}",
            hour12=(local.hour % 12) or 12,
            minute=f"{local.minute:02d}",
            ampm=am if local.hour < 12 else pm,
            tz=_zone_label(local),
        )

    def duration_text(self, minutes: int) -> str:
        """ "15 minutes", "1 hour", "2 days": the largest unit that divides evenly."""
        if minutes >= 1440 and minutes % 1440 == 0:
            return self.catalog.plural("days", minutes // 1440)
        if minutes >= 60 and minutes % 60 == 0:
            return self.catalog.plural("hours", minutes // 60)
        return self.catalog.plural("minutes", minutes)


def _zone_label(local: datetime) -> str:
    name = local.tzname() or ""
    if name.isalpha():
        return name
    offset = local.utcoffset() or timedelta(0)
    total = int(offset.total_seconds() // 60)
    sign = "+" if total >= 0 else "-"
    hours, mins = divmod(abs(total), 60)
    return f"UTC{sign}{hours}" + (f":{mins:02d}" if mins else "")
