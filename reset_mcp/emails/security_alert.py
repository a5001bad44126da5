"""The security alert to an account's owner: why (a reason code), what we saw, recent attempts.

Every word is ours: the reason is a code (`vocab.AlertReason`) rendered from the locale's
`alert_reason_<code>`, and the facts are typed (a time, an IP address, a device label from
our User-Agent parser, a place that passed `untrusted.caller_location` or came from
GeoIP). Rows written before reason codes (free-text `reason` and `details`) still render:
the automatic alert's text maps to its code, any other to `other`, and the free text is
not shown.

Template variables: reason (the code's words), facts (time, ip, device, location; each
may be absent) or None, attempts (list of request: time, ip, device, location),
more_attempts, name. The template adds the owner's action from the branding: a button to
`forgot_password_url`, else to `support_url`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any, ClassVar

from reset_mcp.compose import RequestContext
from reset_mcp.compose.cleaning import LABEL_LIMIT
from reset_mcp.compose.i18n import Formatter, TextTranslator
from reset_mcp.compose.samples import SAMPLE_NOW, sample_attempt
from reset_mcp.compose.views import ip_label, label, person_name, request_view
from reset_mcp.emails.kind import EmailKind, RenderEnv, dump_context, from_ts, load_context
from reset_mcp.vocab import AlertReason

MAX_ATTEMPTS_SHOWN = 10
# The automatic alert's reason before reason codes, as older rows stored it.
AUTOMATIC_REASON = "suspicious password reset activity"


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What the alert says it saw; each part optional, none of it free text."""

    at: datetime | None = None
    ip: str | None = None  # a parsed address, as text
    device: str | None = None  # a label from context.parse_user_agent
    location: str | None = None  # from context.resolve_location

    def dump(self) -> dict[str, Any]:
        return {
            "at": self.at.timestamp() if self.at else None,
            "ip": self.ip,
            "device": self.device,
            "location": self.location,
        }

    @classmethod
    def load(cls, raw: Mapping[str, Any] | None) -> AlertFacts | None:
        if not raw:
            return None
        at = raw.get("at")
        return cls(
            at=from_ts(float(at)) if at is not None else None,
            ip=raw.get("ip"),
            device=raw.get("device"),
            location=raw.get("location"),
        )


@dataclass(frozen=True, slots=True)
class SecurityAlertData:
    reason: AlertReason
    attempts: Sequence[RequestContext] = field(default_factory=tuple)
    to_name: str | None = None
    facts: AlertFacts | None = None


@dataclass(slots=True)  # not frozen: built and dropped on every render, and freezing costs
class Payload:
    reason: AlertReason
    facts: AlertFacts | None = None
    attempts: tuple[RequestContext, ...] = ()
    locale: str | None = None
    timezone: str | None = None
    to_name: str | None = None

    def dump(self) -> dict[str, Any]:
        return {
            "reason_code": str(self.reason),
            "facts": self.facts.dump() if self.facts else None,
            "attempts": [dump_context(a) for a in self.attempts],
            "locale": self.locale,
            "timezone": self.timezone,
            "to_name": self.to_name,
        }


def reason_of(payload: Mapping[str, Any]) -> AlertReason:
    """The reason code of a stored payload, older free-text rows included."""
    code = payload.get("reason_code")
    if code in set(AlertReason):
        return AlertReason(code)
    if code is None and str(payload.get("reason", "")).strip().lower() == AUTOMATIC_REASON:
        return AlertReason.SUSPICIOUS_RESET_ACTIVITY
    return AlertReason.OTHER


def _facts_view(facts: AlertFacts | None, fmt: Formatter, tt: TextTranslator) -> SimpleNamespace | None:
    if facts is None:
        return None
    view = SimpleNamespace(
        time=fmt.datetime_text(facts.at) if facts.at else None,
        ip=ip_label(facts.ip, tt) if facts.ip else None,
        device=label(facts.device, LABEL_LIMIT, tt, "device_unknown") if facts.device else None,
        location=label(facts.location, LABEL_LIMIT, tt, "location_unknown") if facts.location else None,
    )
    return view if any(vars(view).values()) else None


class SecurityAlert(EmailKind[Payload, SecurityAlertData]):
    name = "security_alert"
    label = "Security alert"
    subject_keys: ClassVar[tuple[str, ...]] = ("alert_subject",)

    def view(self, data: SecurityAlertData, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
        attempts = list(data.attempts)
        return {
            "name": person_name(data.to_name),
            "reason": tt(f"alert_reason_{AlertReason(data.reason)}"),
            "facts": _facts_view(data.facts, fmt, tt),
            "attempts": [request_view(a, fmt, tt) for a in attempts[:MAX_ATTEMPTS_SHOWN]],
            "more_attempts": max(len(attempts) - MAX_ATTEMPTS_SHOWN, 0),
        }

    def samples(self) -> tuple[SecurityAlertData, SecurityAlertData]:
        full = SecurityAlertData(
            reason=AlertReason.SUSPICIOUS_RESET_ACTIVITY,
            attempts=(
                sample_attempt(3, "203.0.113.42", "Chrome 131 on Windows 10", "Berlin, Germany"),
                sample_attempt(9, "198.51.100.7", "Firefox 133 on Ubuntu", "Lagos, Nigeria"),
                sample_attempt(14, "192.0.2.15", "Safari 18 on iOS 18", "unknown"),
            ),
            to_name="Ada Lovelace",
            facts=AlertFacts(
                at=SAMPLE_NOW, ip="203.0.113.42", device="Chrome 131 on Windows 10", location="Berlin, Germany"
            ),
        )
        return full, SecurityAlertData(reason=AlertReason.OTHER)

    def load(self, payload: Mapping[str, Any]) -> Payload:
        attempts = (load_context(a) for a in payload.get("attempts") or ())
        return Payload(
            reason=reason_of(payload),
            facts=AlertFacts.load(payload.get("facts")),
            attempts=tuple(a for a in attempts if a is not None),
            locale=payload.get("locale"),
            timezone=payload.get("timezone"),
            to_name=payload.get("to_name"),
        )

    def data(self, env: RenderEnv, payload: Payload, token: str | None, now: datetime) -> SecurityAlertData:
        return SecurityAlertData(
            reason=payload.reason, attempts=payload.attempts, to_name=payload.to_name, facts=payload.facts
        )


KIND = SecurityAlert()
