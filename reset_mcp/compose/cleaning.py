"""Turning untrusted text into something safe to show: one line, visible, bounded.

Every free-text field that reaches a template (names, device and location labels,
reasons, summaries) and every subject passes through `clean_header_text`. HTML
escaping is Jinja2's job; this module removes what escaping cannot: line breaks
(header injection), control characters, and invisible format characters such as
the bidi overrides U+202A..U+202E and U+2066..U+2069 that can make "moc.live" read
as "evil.com".
"""

from __future__ import annotations

import re

from reset_mcp.errors import InvalidInputError

ELLIPSIS = "…"

# Caps for the fields the composer shows (characters, after cleaning).
NAME_LIMIT = 80
LABEL_LIMIT = 120  # device, location, requested_by
IP_LIMIT = 64
REASON_LIMIT = 200
LONG_TEXT_LIMIT = 1000  # details, summary
RECIPIENT_LIMIT = 254
URL_LIMIT = 2048

# Cc, Cf, Cs, Zl and Zp code points (Unicode 15) that are not whitespace to Python's
# `\s`; whitespace controls (TAB, CR, LF, VT, FF, U+001C..1F, U+0085, U+2028/9) are
# turned into spaces instead, so "Berlin\nGermany" reads "Berlin Germany".
_INVISIBLE = (
    "\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f"
    "\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ud800-\udfff\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_INVISIBLE_RE = re.compile(f"[{_INVISIBLE}]")
_SPACE_RE = re.compile(r"\s+")
# For multi-line output (text part): keep LF, drop every other control or format char.
_NOT_LINE_RE = re.compile(f"[{_INVISIBLE}\t\r\x0b\x0c\x1c-\x1f\x85\u2028\u2029]")
_URL_IN_TEXT_RE = re.compile(r"\b(?:(?:https?|ftp|file|javascript|data):|www\.)\S+", re.IGNORECASE)
_URL_FORBIDDEN = '<>"`\\'
_COLOR_RE = re.compile(r"#(?:[0-9a-fA-F]{3}){1,2}")
_EMAIL_RE = re.compile(r"[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+")


def clean_header_text(value: str, limit: int) -> str:
    """One visible line of at most `limit` characters, cut with an ellipsis.

    Strips CR/LF and every other control or format character (bidi overrides and
    isolates, zero-width characters, BOM), collapses runs of whitespace into one
    space and trims the ends. Safe for a mail header; still needs HTML escaping.
    """
    if limit <= 0 or not value:
        return ""
    # Bound the work on hostile input: a 5,000-character name is cut anyway.
    budget = max(limit * 8, 1024)
    cut = len(value) > budget
    if cut:
        value = value[:budget]
    if value.isprintable() and "  " not in value and value[0] != " " and value[-1] != " ":
        text = value  # the common case: nothing to remove (isprintable is False for Cc, Cf, Z*)
    else:
        text = _SPACE_RE.sub(" ", _INVISIBLE_RE.sub("", value)).strip()
    if cut or len(text) > limit:
        return text[: limit - 1].rstrip() + ELLIPSIS
    return text


_ANGLE = str.maketrans({"<": "‹", ">": "›"})


def defang_markup(value: str) -> str:
    """`<` and `>` as the look-alikes `‹` `›`, so plain text can never carry a raw tag.

    For the text part and the subject, where HTML escaping would show `&lt;`. The
    composer refuses URLs containing `<`, `>` or `"`, so no link is changed.
    """
    if "<" in value or ">" in value:
        return value.translate(_ANGLE)
    return value


def clean_optional(value: str | None, limit: int) -> str | None:
    """`clean_header_text`, with None (or nothing visible left) as None."""
    if value is None:
        return None
    return clean_header_text(value, limit) or None


def strip_invisible(value: str) -> str:
    """Drop control and format characters but keep line feeds (for text bodies)."""
    return _NOT_LINE_RE.sub("", value)


def redact_urls(value: str, replacement: str) -> str:
    """Replace anything that looks like a URL (a notice must never carry a link)."""
    if ":" not in value and "." not in value:
        return value
    return _URL_IN_TEXT_RE.sub(replacement, value)


def clean_url(value: str | None, field: str, *, required: bool = False) -> str | None:
    """An absolute http(s) URL without whitespace, or InvalidInputError.

    Templates escape URLs, but escaping cannot make `javascript:` safe, so the scheme
    is checked here. None (or empty) is allowed unless `required`.
    """
    if not value:
        if required:
            raise InvalidInputError(f"{field} is required")
        return None
    url = value if value.isprintable() else _INVISIBLE_RE.sub("", value)
    url = url.strip()
    if len(url) > URL_LIMIT:
        raise InvalidInputError(f"{field} is longer than {URL_LIMIT} characters")
    if not url.isprintable() or " " in url:
        raise InvalidInputError(f"{field} must not contain whitespace")
    if any(ch in url for ch in _URL_FORBIDDEN):
        raise InvalidInputError(f'{field} must percent-encode < > " ` \\')
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not sep or scheme.lower() not in ("http", "https") or not host or "\\" in host:
        raise InvalidInputError(f"{field} must be an absolute http or https URL")
    return url


def safe_branding_url(value: str | None) -> str | None:
    """A branding URL as configured, or None when it is not an absolute http(s) URL."""
    try:
        return clean_url(value, "url")
    except InvalidInputError:
        return None


def safe_email(value: str | None) -> str | None:
    """A plausible single email address (for a mailto: link), else None."""
    if not value:
        return None
    address = clean_header_text(value, RECIPIENT_LIMIT)
    return address if _EMAIL_RE.fullmatch(address) else None


def normalize_color(value: str | None, default: str) -> str:
    """`#rgb` or `#rrggbb` as lowercase `#rrggbb`; anything else gives `default`."""
    if not value or not _COLOR_RE.fullmatch(value.strip()):
        return default
    digits = value.strip()[1:].lower()
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return "#" + digits


def text_color_on(background: str) -> str:
    """White or near-black, whichever contrasts more with a `#rrggbb` background."""

    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(background[i : i + 2]) for i in (1, 3, 5))
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    dark = 0.0113  # relative luminance of #111827
    return "#ffffff" if (1.05 / (lum + 0.05)) >= ((lum + 0.05) / (dark + 0.05)) else "#111827"
