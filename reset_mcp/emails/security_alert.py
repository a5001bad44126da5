"""The security alert to an account's owner: why, and the recent reset attempts.

Template variables: reason (the automatic alert's as the locale's sentence, an agent's as
it gave it), attempts (list of request: time, ip, device, location), more_attempts,
details, name. The template adds the owner's action from the branding: a button to
`forgot_password_url`, else to `support_url`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from reset_mcp.compose import RequestContext
from reset_mcp.compose.cleaning import LONG_TEXT_LIMIT, REASON_LIMIT, clean_header_text, redact_urls
from reset_mcp.compose.i18n import Formatter, TextTranslator
from reset_mcp.compose.samples import sample_attempt
from reset_mcp.compose.views import person_name, request_view
from reset_mcp.emails.kind import EmailKind, RenderEnv, dump_context, load_context

MAX_ATTEMPTS_SHOWN = 10
# The reason of the alert the abuse detector sends on its own (`flows/reset.py`): ours,
# so the owner reads it as a sentence of the locale, not as this label.
AUTOMATIC_REASON = "suspicious password reset activity"


@dataclass(frozen=True, slots=True)
class SecurityAlertData:
    reason: str
    attempts: Sequence[RequestContext] = field(default_factory=tuple)
    to_name: str | None = None
    details: str | None = None


@dataclass(slots=True)  # not frozen: built and dropped on every render, and freezing costs
class Payload:
    reason: str
    details: str | None = None
    attempts: tuple[RequestContext, ...] = ()
    locale: str | None = None
    timezone: str | None = None
    to_name: str | None = None

    def dump(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "details": self.details,
            "attempts": [dump_context(a) for a in self.attempts],
            "locale": self.locale,
            "timezone": self.timezone,
            "to_name": self.to_name,
        }


def reason_text(reason: str | None, tt: TextTranslator) -> str:
    """The automatic alert's reason as the locale words it; an agent's reason as it gave it (cleaned)."""
    if reason == AUTOMATIC_REASON:
        return str(tt("alert_reason_suspicious_reset_activity"))
    return redact_urls(clean_header_text(reason or "", REASON_LIMIT), tt("link_removed"))


class SecurityAlert(EmailKind[Payload, SecurityAlertData]):
    name = "security_alert"
    label = "Security alert"
    subject_keys: ClassVar[tuple[str, ...]] = ("alert_subject",)

    def view(self, data: SecurityAlertData, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
        attempts = list(data.attempts)
        removed = tt("link_removed")
        return {
            "name": person_name(data.to_name),
            "reason": reason_text(data.reason, tt),
            "attempts": [request_view(a, fmt, tt) for a in attempts[:MAX_ATTEMPTS_SHOWN]],
            "more_attempts": max(len(attempts) - MAX_ATTEMPTS_SHOWN, 0),
            "details": redact_urls(clean_header_text(data.details or "", LONG_TEXT_LIMIT), removed) or None,
        }

    def samples(self) -> tuple[SecurityAlertData, SecurityAlertData]:
        full = SecurityAlertData(
            reason=AUTOMATIC_REASON,
            attempts=(
                sample_attempt(3, "203.0.113.42", "Chrome 131 on Windows 10", "Berlin, Germany"),
                sample_attempt(9, "198.51.100.7", "Firefox 133 on Ubuntu", "Lagos, Nigeria"),
                sample_attempt(14, "192.0.2.15", "Safari 18 on iOS 18", "unknown"),
            ),
            to_name="Ada Lovelace",
            details="Further requests from these addresses are slowed down for one hour.",
        )
        return full, SecurityAlertData(reason="Repeated password reset requests")

    def load(self, payload: Mapping[str, Any]) -> Payload:
        attempts = (load_context(a) for a in payload.get("attempts") or ())
        return Payload(
            reason=str(payload["reason"]),
            details=payload.get("details"),
            attempts=tuple(a for a in attempts if a is not None),
            locale=payload.get("locale"),
            timezone=payload.get("timezone"),
            to_name=payload.get("to_name"),
        )

    def data(self, env: RenderEnv, payload: Payload, token: str | None, now: datetime) -> SecurityAlertData:
        return SecurityAlertData(
            reason=payload.reason, attempts=payload.attempts, to_name=payload.to_name, details=payload.details
        )


KIND = SecurityAlert()
