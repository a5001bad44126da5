"""The overseer's digest: the notices held back by the hourly cap, listed in one email.

Every held (or monitored) email used to mail the overseer at once, past the policy's
`max_per_hour`: one agent could bury the overseer in notices. Past the cap the gate
records each notice instead, and the job runner sends them here, at most one digest an
hour (`flows/oversight_digest.py`). A kind of its own rather than a variant of the
notice: the notice is about one email (its facts, its signed decision links), the digest
is a list with a count, and neither payload has to carry the other's shape.

Like the notice it never carries a token or a link to one, and the policy does not gate
it. Template variables: count, shown (the items), more (how many are not listed), cap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from reset_mcp.compose.cleaning import LABEL_LIMIT, RECIPIENT_LIMIT, clean_header_text, clean_optional, redact_urls
from reset_mcp.compose.i18n import Formatter, TextTranslator
from reset_mcp.compose.samples import SAMPLE_NOW
from reset_mcp.emails.kind import EmailKind, RenderEnv, from_ts
from reset_mcp.emails.oversight_notice import DECISIONS

MAX_ITEMS = 50  # listed one by one; the rest are counted


@dataclass(frozen=True, slots=True)
class DigestItem:
    kind: str
    recipient: str
    decision: str  # "held" or "sent", as in the notice
    requested_by: str
    at: datetime
    approval_id: str | None = None
    expires_at: datetime | None = None

    def dump(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "recipient": self.recipient,
            "decision": self.decision,
            "requested_by": self.requested_by,
            "at": self.at.timestamp(),
            "approval_id": self.approval_id,
            "expires_at": self.expires_at.timestamp() if self.expires_at else None,
        }

    @classmethod
    def load(cls, raw: Mapping[str, Any]) -> DigestItem:
        expires = raw.get("expires_at")
        return cls(
            kind=str(raw["kind"]),
            recipient=str(raw["recipient"]),
            decision=str(raw["decision"]),
            requested_by=str(raw["requested_by"]),
            at=from_ts(float(raw["at"])),
            approval_id=raw.get("approval_id"),
            expires_at=from_ts(float(expires)) if expires else None,
        )


@dataclass(frozen=True, slots=True)
class Payload:
    """Also the render data: nothing is added at render time."""

    items: tuple[DigestItem, ...]
    more: int = 0  # held back but not listed (past MAX_ITEMS)
    cap: int = 0  # the hourly notice cap that held them back
    locale: str | None = field(default=None)
    timezone: str | None = None  # the overseer's (RESET_MCP_OVERSIGHT_TIMEZONE), for the times listed

    def dump(self) -> dict[str, Any]:
        return {
            "items": [i.dump() for i in self.items],
            "more": self.more,
            "cap": self.cap,
            "locale": self.locale,
            "timezone": self.timezone,
        }


class OversightDigest(EmailKind[Payload, Payload]):
    name = "oversight_digest"
    label = "Oversight digest"
    to_overseer = True
    subject_keys: ClassVar[tuple[str, ...]] = ("overseer_digest_subject",)

    def view(self, data: Payload, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
        removed = tt("link_removed")
        shown = []
        for item in data.items[:MAX_ITEMS]:
            kind = clean_header_text(item.kind or "", 64)
            kind_key = f"kind_{kind}"
            decision = clean_header_text(item.decision or "", 40).lower()
            shown.append(
                {
                    "kind_label": tt(kind_key) if kind_key in tt.catalog.strings else (kind or "?"),
                    "recipient": clean_header_text(item.recipient or "", RECIPIENT_LIMIT),
                    "decision_label": tt(f"decision_{decision}") if decision in DECISIONS else (decision or "?"),
                    "requested_by": redact_urls(clean_header_text(item.requested_by or "", LABEL_LIMIT), removed),
                    "at": fmt.datetime_text(item.at),
                    "approval_id": clean_optional(item.approval_id, 64),
                    "decide_by": fmt.datetime_text(item.expires_at) if item.expires_at else None,
                }
            )
        more = max(0, data.more) + max(0, len(data.items) - MAX_ITEMS)
        return {"name": None, "count": str(len(shown) + more), "shown": shown, "more": str(more) if more else None,
                "cap": str(data.cap)}  # fmt: skip

    def samples(self) -> tuple[Payload, Payload]:
        held = DigestItem(
            kind="password_reset",
            recipient="ada@example.com",
            decision="held",
            requested_by="key:agent01",
            at=SAMPLE_NOW,
            approval_id="apr_01J9SAMPLE",
            expires_at=SAMPLE_NOW + timedelta(hours=24),
        )
        sent = DigestItem("security_alert", "bob@example.com", "sent", "abuse-detector", SAMPLE_NOW)
        return Payload((held, sent), more=3, cap=10), Payload((sent,), cap=2)

    def load(self, payload: Mapping[str, Any]) -> Payload:
        items = tuple(DigestItem.load(raw) for raw in payload.get("items") or ())
        more, cap = int(payload.get("more") or 0), int(payload.get("cap") or 0)
        return Payload(items, more, cap, payload.get("locale"), payload.get("timezone"))

    def data(self, env: RenderEnv, payload: Payload, token: str | None, now: datetime) -> Payload:
        return payload


KIND = OversightDigest()
