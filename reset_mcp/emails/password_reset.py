"""The password reset email: a signed one-time link, and who asked for it.

Template variables: reset_url, report_url, duration ("15 minutes"), ttl_minutes,
expires_at (formatted), request (time, ip, device, location), name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar

from reset_mcp.compose import RequestContext
from reset_mcp.compose.cleaning import clean_url
from reset_mcp.compose.i18n import Formatter, TextTranslator
from reset_mcp.compose.samples import EMPTY_CONTEXT, SAMPLE_CONTEXT, SAMPLE_LINK, SAMPLE_NOW
from reset_mcp.compose.views import person_name, request_view
from reset_mcp.emails.kind import MASK, Claims, EmailKind, RenderEnv, dump_context, from_ts, load_context
from reset_mcp.errors import InvalidInputError


@dataclass(frozen=True, slots=True)
class PasswordResetData:
    reset_url: str
    expires_at: datetime
    ttl_minutes: int
    context: RequestContext
    to_name: str | None = None
    report_url: str | None = None  # "this wasn't me" link, when configured


@dataclass(slots=True)  # not frozen: built and dropped on every render, and freezing costs
class Payload:
    context: RequestContext
    to_name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    claims: Claims | None = None  # added when the send is released and its token record written
    ttl_minutes: int | None = None

    def dump(self) -> dict[str, Any]:
        out = {
            "to_name": self.to_name,
            "context": dump_context(self.context),
            "locale": self.locale,
            "timezone": self.timezone,
        }
        if self.claims is not None:
            out |= {"claims": self.claims.dump(), "ttl_minutes": self.ttl_minutes}
        return out


class PasswordReset(EmailKind[Payload, PasswordResetData]):
    name = "password_reset"
    label = "Password reset"
    carries_token = True
    subject_keys: ClassVar[tuple[str, ...]] = ("reset_subject",)

    def view(self, data: PasswordResetData, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
        if data.ttl_minutes < 1:
            raise InvalidInputError("ttl_minutes must be at least 1")
        return {
            "name": person_name(data.to_name),
            "reset_url": clean_url(data.reset_url, "reset_url", required=True),
            "report_url": clean_url(data.report_url, "report_url"),
            "duration": fmt.duration_text(data.ttl_minutes),
            "ttl_minutes": data.ttl_minutes,
            "expires_at": fmt.datetime_text(data.expires_at),
            "request": request_view(data.context, fmt, tt),
        }

    def samples(self) -> tuple[PasswordResetData, PasswordResetData]:
        expires = SAMPLE_NOW + timedelta(minutes=15)
        full = PasswordResetData(
            reset_url=SAMPLE_LINK,
            expires_at=expires,
            ttl_minutes=15,
            context=SAMPLE_CONTEXT,
            to_name="Ada Lovelace",
            report_url="https://app.example.com/reset/report?request=sample",
        )
        return full, PasswordResetData(reset_url=SAMPLE_LINK, expires_at=expires, ttl_minutes=15, context=EMPTY_CONTEXT)

    def sample(self, env: RenderEnv) -> PasswordResetData:
        # The configured reset page, and "this wasn't me" only where RESET_MCP_REPORT_URL is set.
        return replace(
            self.samples()[0],
            reset_url=env.reset_url.replace("{token}", MASK),
            report_url=env.report_url.replace("{token}", MASK) if env.report_url else None,
        )

    def load(self, payload: Mapping[str, Any]) -> Payload:
        context = load_context(payload.get("context"))
        if context is None:
            raise ValueError("a password reset payload needs its request context")
        claims = payload.get("claims")
        return Payload(
            context=context,
            to_name=payload.get("to_name"),
            locale=payload.get("locale"),
            timezone=payload.get("timezone"),
            claims=Claims.load(claims) if claims else None,
            ttl_minutes=payload.get("ttl_minutes"),
        )

    def data(self, env: RenderEnv, payload: Payload, token: str | None, now: datetime) -> PasswordResetData:
        if token is None:
            raise ValueError("a password reset email needs its token (or MASK for a preview)")
        if payload.claims is not None:
            expires, ttl = from_ts(payload.claims.exp), int(payload.ttl_minutes or env.ttl_minutes)
        else:  # held, not yet released: previewed as if approved now
            expires, ttl = now + timedelta(minutes=env.ttl_minutes), env.ttl_minutes
        return PasswordResetData(
            reset_url=env.reset_url.replace("{token}", token),
            report_url=env.report_url.replace("{token}", token) if env.report_url else None,
            expires_at=expires,
            ttl_minutes=ttl,
            context=payload.context,
            to_name=payload.to_name,
        )


KIND = PasswordReset()
