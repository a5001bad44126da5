"""What every kind's template sees: branding, the request context, names; cleaned and capped.

Both parts of an email render from the same view, so the text and the HTML carry
the same facts. Every string here is plain text: the HTML environment escapes it,
the text environment prints it as it is (it is already free of control characters).
Each kind builds the rest of its view in its own module under `emails/`.

Template variables of every kind, for authors of override templates: `t` (the locale's
messages: `t.key` for one without arguments, with the branding already filled in;
`t("key", name=...)` for one with arguments; `t.plural("minutes", n)`), `brand`
(product, sender, logo_url, color, on_color, link_color, support_url, support_email,
forgot_password_url, address_lines), `lang`, `dir`, `subject`, `name` (or None). `t.key` and `brand.attr`
become constants when the template is compiled, so `t` and `brand` must not be
reassigned in a template. A kind's own variables are listed in its module.
"""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

from reset_mcp import untrusted
from reset_mcp.compose.cleaning import (
    IP_LIMIT,
    LABEL_LIMIT,
    NAME_LIMIT,
    clean_header_text,
    clean_optional,
    normalize_color,
    safe_branding_url,
    safe_email,
    text_color_on,
)
from reset_mcp.compose.i18n import Formatter, TextTranslator
from reset_mcp.compose.models import Branding, RequestContext
from reset_mcp.errors import ConfigError

DEFAULT_COLOR = "#2563eb"
DEFAULT_LINK_COLOR = "#1d4ed8"
PRODUCT_LIMIT = 80
MAX_ADDRESS_LINES = 6
# The context layer's location labels that are not places (`context.SPECIAL_NETWORKS`,
# "unknown"), as an account owner reads them: a private network is named as one; an
# internal class name ("reserved address", "link-local address") never reaches an
# email, it reads as an address we cannot locate. A test holds this table to the
# context layer's list. "loopback" is what rows from older versions hold.
_UNLOCATABLE = (
    "unspecified address",
    "loopback address",
    "loopback",
    "link-local address",
    "multicast address",
    "shared address space (cgnat)",
    "reserved address",
)
_LOCATION_KEYS = {
    "unknown": "location_unknown",
    "private network": "location_private",
    **dict.fromkeys(_UNLOCATABLE, "location_unlocatable"),
}


def brand_view(branding: Branding) -> SimpleNamespace:
    """The branding as templates use it; an empty product name is a ConfigError."""
    product = clean_header_text(branding.product_name or "", PRODUCT_LIMIT)
    if not product:
        raise ConfigError("the product name (RESET_MCP_PRODUCT_NAME) must not be empty")
    color = normalize_color(branding.primary_color, DEFAULT_COLOR)
    on_color = text_color_on(color)
    address = (branding.postal_address or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return SimpleNamespace(
        product=product,
        sender=clean_optional(branding.sender_name, PRODUCT_LIMIT) or product,
        logo_url=safe_branding_url(branding.logo_url),
        color=color,
        on_color=on_color,
        # A colour dark enough for white text also reads as link text on white.
        link_color=color if on_color == "#ffffff" else DEFAULT_LINK_COLOR,
        support_url=safe_branding_url(branding.support_url),
        support_email=safe_email(branding.support_email),
        forgot_password_url=safe_branding_url(branding.forgot_password_url),
        address_lines=tuple(line for line in (clean_header_text(part, LABEL_LIMIT) for part in address) if line)[
            :MAX_ADDRESS_LINES
        ],
    )


def label(value: str | None, limit: int, tt: TextTranslator, fallback_key: str) -> str:
    # Labels an attacker can influence (device, location) must not carry a link, a domain,
    # an address or a phone number: checked again here, so a row stored by an older
    # version (or a new caller of the composer) cannot put one in an email either.
    text = clean_header_text(value or "", limit)
    if not text or untrusted.looks_like_contact_or_link(text):
        return tt(fallback_key)
    return text


def ip_label(value: str | None, tt: TextTranslator) -> str:
    """An IP address as the email shows it; anything that is not one reads "unknown"
    (rows are written with parsed addresses; this holds for any other caller too)."""
    try:
        return str(ipaddress.ip_address((value or "").strip()[:IP_LIMIT]))
    except ValueError:
        return tt("location_unknown")


def request_view(ctx: RequestContext, fmt: Formatter, tt: TextTranslator) -> SimpleNamespace:
    location = label(ctx.location, LABEL_LIMIT, tt, "location_unknown")
    key = _LOCATION_KEYS.get(location.lower())
    return SimpleNamespace(
        time=fmt.datetime_text(ctx.at),
        ip=ip_label(ctx.ip, tt),
        device=label(ctx.device, LABEL_LIMIT, tt, "device_unknown"),
        location=tt(key) if key else location,
    )


def person_name(value: str | None) -> str | None:
    """The name to greet by, if `untrusted.person_name` accepts it (letters, spaces and a few
    marks, no digits, no link); None otherwise, and the email greets without a name."""
    return untrusted.person_name(clean_optional(value, NAME_LIMIT))
