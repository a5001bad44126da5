"""The "your password was changed" notice, sent to the owner after every completed reset.

Template variables: changed_at (formatted), request (time, ip, device, location; or None), name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from reset_mcp.compose import RequestContext
from reset_mcp.compose.i18n import Formatter, TextTranslator
from reset_mcp.compose.samples import SAMPLE_CONTEXT, SAMPLE_NOW
from reset_mcp.compose.views import person_name, request_view
from reset_mcp.emails.kind import EmailKind, RenderEnv, dump_context, from_ts, load_context


@dataclass(frozen=True, slots=True)
class PasswordChangedData:
    changed_at: datetime
    context: RequestContext | None = None
    to_name: str | None = None


@dataclass(slots=True)  # not frozen: built and dropped on every render, and freezing costs
class Payload:
    changed_at: datetime
    context: RequestContext | None = None  # what the reset page passed on, if anything
    locale: str | None = None
    timezone: str | None = None
    to_name: str | None = None

    def dump(self) -> dict[str, Any]:
        return {
            "changed_at": self.changed_at.timestamp(),
            "context": dump_context(self.context) if self.context else None,
            "locale": self.locale,
            "timezone": self.timezone,
            "to_name": self.to_name,
        }


class PasswordChanged(EmailKind[Payload, PasswordChangedData]):
    name = "password_changed"
    label = "Password changed"
    subject_keys: ClassVar[tuple[str, ...]] = ("changed_subject",)

    def view(self, data: PasswordChangedData, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
        return {
            "name": person_name(data.to_name),
            "changed_at": fmt.datetime_text(data.changed_at),
            "request": request_view(data.context, fmt, tt) if data.context else None,
        }

    def samples(self) -> tuple[PasswordChangedData, PasswordChangedData]:
        full = PasswordChangedData(changed_at=SAMPLE_NOW, context=SAMPLE_CONTEXT, to_name="Ada Lovelace")
        return full, PasswordChangedData(changed_at=SAMPLE_NOW)

    def load(self, payload: Mapping[str, Any]) -> Payload:
        return Payload(
            changed_at=from_ts(float(payload["changed_at"])),
            context=load_context(payload.get("context")),
            locale=payload.get("locale"),
            timezone=payload.get("timezone"),
            to_name=payload.get("to_name"),
        )

    def data(self, env: RenderEnv, payload: Payload, token: str | None, now: datetime) -> PasswordChangedData:
        return PasswordChangedData(changed_at=payload.changed_at, context=payload.context, to_name=payload.to_name)


KIND = PasswordChanged()
