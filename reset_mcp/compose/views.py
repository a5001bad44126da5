"""From the service's data classes to what the templates see: cleaned, capped, formatted.

Both parts of an email render from the same view, so the text and the HTML carry
the same facts. Every string here is plain text: the HTML environment escapes it,
the text environment prints it as it is (it is already free of control characters).

Template variables, for authors of override templates:

- every kind: `t` (the locale's messages: `t.key` for one without arguments, with
  the branding already filled in; `t("key", name=...)` for one with arguments;
  `t.plural("minutes", n)`), `brand` (product, sender, logo_url, color, on_color,
  link_color, support_url, support_email, address_lines), `lang`, `dir`,
  `subject`, `name` (or None). `t.key` and `brand.attr` become constants when the
  template is compiled, so `t` and `brand` must not be reassigned in a template.
- password_reset: reset_url, report_url, duration ("15 minutes"), ttl_minutes,
  expires_at (formatted), request (time, ip, device, location).
- security_alert: reason, attempts (list of request), more_attempts, details.
- password_changed: changed_at (formatted), request (or None).
- oversight_notice: kind, kind_label, recipient, decision_key (held, sent, other),
  decision_label, summary, requested_by, approval_id, decide_by, approve_url,
  reject_url, fact_rows (label, value pairs).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from reset_mcp.compose.cleaning import (
    IP_LIMIT,
    LABEL_LIMIT,
    LONG_TEXT_LIMIT,
    NAME_LIMIT,
    REASON_LIMIT,
    RECIPIENT_LIMIT,
    clean_header_text,
    clean_optional,
    clean_url,
    normalize_color,
    redact_urls,
    safe_branding_url,
    safe_email,
    text_color_on,
)
from reset_mcp.compose.i18n import Formatter, TextTranslator
from reset_mcp.compose.models import (
    Branding,
    OversightNoticeData,
    PasswordChangedData,
    PasswordResetData,
    RequestContext,
    SecurityAlertData,
)
from reset_mcp.errors import ConfigError, InvalidInputError

DEFAULT_COLOR = "#2563eb"
DEFAULT_LINK_COLOR = "#1d4ed8"
PRODUCT_LIMIT = 80
MAX_ATTEMPTS_SHOWN = 10
MAX_ADDRESS_LINES = 6
# Location labels of the context layer that read better translated.
_LOCATION_KEYS = {
    "unknown": "location_unknown",
    "private network": "location_private",
    "loopback": "location_loopback",
}
_DECISIONS = ("held", "sent")


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
        address_lines=tuple(line for line in (clean_header_text(part, LABEL_LIMIT) for part in address) if line)[
            :MAX_ADDRESS_LINES
        ],
    )


def _label(value: str | None, limit: int, tt: TextTranslator, fallback_key: str) -> str:
    # Labels an attacker can choose (device, location) must not carry a phishing link.
    text = redact_urls(clean_header_text(value or "", limit), tt("link_removed"))
    return text or tt(fallback_key)


def request_view(ctx: RequestContext, fmt: Formatter, tt: TextTranslator) -> SimpleNamespace:
    location = _label(ctx.location, LABEL_LIMIT, tt, "location_unknown")
    key = _LOCATION_KEYS.get(location.lower())
    return SimpleNamespace(
        time=fmt.datetime_text(ctx.at),
        ip=clean_header_text(ctx.ip or "", IP_LIMIT) or tt("location_unknown"),
        device=_label(ctx.device, LABEL_LIMIT, tt, "device_unknown"),
        location=tt(key) if key else location,
    )


def _name(value: str | None) -> str | None:
    return clean_optional(value, NAME_LIMIT)


def password_reset(data: PasswordResetData, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
    if data.ttl_minutes < 1:
        raise InvalidInputError("ttl_minutes must be at least 1")
    return {
        "name": _name(data.to_name),
        "reset_url": clean_url(data.reset_url, "reset_url", required=True),
        "report_url": clean_url(data.report_url, "report_url"),
        "duration": fmt.duration_text(data.ttl_minutes),
        "ttl_minutes": data.ttl_minutes,
        "expires_at": fmt.datetime_text(data.expires_at),
        "request": request_view(data.context, fmt, tt),
    }


def security_alert(data: SecurityAlertData, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
    attempts = list(data.attempts)
    shown = [request_view(a, fmt, tt) for a in attempts[:MAX_ATTEMPTS_SHOWN]]
    return {
        "name": _name(data.to_name),
        "reason": redact_urls(clean_header_text(data.reason or "", REASON_LIMIT), tt("link_removed")),
        "attempts": shown,
        "more_attempts": max(len(attempts) - MAX_ATTEMPTS_SHOWN, 0),
        "details": redact_urls(clean_header_text(data.details or "", LONG_TEXT_LIMIT), tt("link_removed")) or None,
    }


def password_changed(data: PasswordChangedData, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
    return {
        "name": _name(data.to_name),
        "changed_at": fmt.datetime_text(data.changed_at),
        "request": request_view(data.context, fmt, tt) if data.context else None,
    }


def oversight_notice(data: OversightNoticeData, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
    removed = tt("link_removed")
    kind = clean_header_text(data.kind or "", 64)
    kind_key = f"kind_{kind}"
    kind_label = tt(kind_key) if kind_key in tt.catalog.strings else (kind or "?")
    decision = clean_header_text(data.decision or "", 40).lower()
    decision_key = decision if decision in _DECISIONS else "other"
    decision_label = tt(f"decision_{decision}") if decision in _DECISIONS else (decision or "?")
    recipient = clean_header_text(data.recipient or "", RECIPIENT_LIMIT)
    requested_by = redact_urls(clean_header_text(data.requested_by or "", LABEL_LIMIT), removed)
    approval_id = clean_optional(data.approval_id, 64)
    decide_by = fmt.datetime_text(data.expires_at) if data.expires_at else None
    rows = [
        (tt("fact_kind"), kind_label),
        (tt("fact_recipient"), recipient),
        (tt("fact_decision"), decision_label),
        (tt("fact_requested_by"), requested_by),
    ]
    if approval_id:
        rows.append((tt("fact_approval_id"), approval_id))
    if decide_by:
        rows.append((tt("fact_decide_by"), decide_by))
    return {
        "name": None,
        "kind": kind,
        "kind_label": kind_label,
        "recipient": recipient,
        "decision_key": decision_key,
        "decision_label": decision_label,
        # The summary is free text: any link in it (a reset link above all) is removed.
        "summary": redact_urls(clean_header_text(data.summary or "", LONG_TEXT_LIMIT), removed),
        "requested_by": requested_by,
        "approval_id": approval_id,
        "decide_by": decide_by,
        "approve_url": clean_url(data.approve_url, "approve_url"),
        "reject_url": clean_url(data.reject_url, "reject_url"),
        "fact_rows": rows,
    }
