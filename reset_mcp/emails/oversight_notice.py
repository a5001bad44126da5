"""The overseer's notice about another email: what was sent or held, and the signed links to decide.

It never carries the email's token or link. The policy does not gate it (it is the
policy's own message to the overseer).

The summary is our words; what the requester gave (a user id, a name, where the request
came from) is `given`, shown apart and quoted, as data. A given value that looks like a
link, a domain, an address or a phone number is withheld: the notice goes out under our
sender too. Rows stored before `given` existed kept it inside a free-text summary: that
summary is withheld whole if it carries any such thing.

Template variables: kind, kind_label, recipient, decision_key (held, sent, other),
decision_label, summary, requested_by, approval_id, decide_by, approve_url, reject_url,
fact_rows (label, value pairs), given_rows (label, quoted value pairs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar

from reset_mcp import untrusted
from reset_mcp.compose.cleaning import (
    LABEL_LIMIT,
    LONG_TEXT_LIMIT,
    RECIPIENT_LIMIT,
    clean_header_text,
    clean_optional,
    clean_url,
)
from reset_mcp.compose.i18n import Formatter, TextTranslator
from reset_mcp.compose.samples import SAMPLE_NOW
from reset_mcp.emails.kind import EmailKind, RenderEnv, from_ts

HELD, SENT = "held", "sent"  # what the notice says of the email it is about
DECISIONS = (HELD, SENT)
GIVEN = ("user_id", "name", "ip", "device", "location")  # in this order, each under `fact_<key>`
_GIVEN_LABELS = {"ip": "fact_ip", "device": "fact_device", "location": "fact_location"}


def shown(value: str, limit: int, withheld: str) -> str:
    """Outsiders' text as the notice may show it: data, and never a link or a contact."""
    text = untrusted.as_data(clean_header_text(value, limit), limit)
    return withheld if untrusted.looks_like_contact_or_link(text) else text


@dataclass(frozen=True, slots=True)
class OversightNoticeData:
    kind: str  # the email kind this notice is about
    recipient: str
    decision: str  # "sent" (monitored) or "held" (gated)
    summary: str
    requested_by: str
    approval_id: str | None = None
    approve_url: str | None = None  # signed single-use links (approval by email)
    reject_url: str | None = None
    expires_at: datetime | None = None
    given: Mapping[str, str] | None = None  # what the requester gave; None for rows from before


@dataclass(slots=True)  # not frozen: built and dropped on every render, and freezing costs
class Payload:
    about_kind: str
    about_recipient: str
    decision: str
    summary: str
    requested_by: str
    approval_id: str | None = None
    expires_at: datetime | None = None
    timezone: str | None = None  # the overseer's (RESET_MCP_OVERSIGHT_TIMEZONE), for "decide before"
    given: dict[str, str] | None = None

    def dump(self) -> dict[str, Any]:
        return {
            "about_kind": self.about_kind,
            "about_recipient": self.about_recipient,
            "decision": self.decision,
            "summary": self.summary,
            "requested_by": self.requested_by,
            "approval_id": self.approval_id,
            "expires_at": self.expires_at.timestamp() if self.expires_at else None,
            "timezone": self.timezone,
            "given": self.given,
        }


class OversightNotice(EmailKind[Payload, OversightNoticeData]):
    name = "oversight_notice"
    label = "Oversight notice"
    to_overseer = True
    subject_keys: ClassVar[tuple[str, ...]] = ("notice_subject_held", "notice_subject_sent", "notice_subject_other")

    def subject_key(self, data: OversightNoticeData) -> str:
        decision = (data.decision or "").strip().lower()
        return f"notice_subject_{decision if decision in DECISIONS else 'other'}"

    def view(self, data: OversightNoticeData, fmt: Formatter, tt: TextTranslator) -> dict[str, Any]:
        withheld = tt("notice_withheld")
        kind = clean_header_text(data.kind or "", 64)
        kind_key = f"kind_{kind}"
        kind_label = tt(kind_key) if kind_key in tt.catalog.strings else (kind or "?")
        decision = clean_header_text(data.decision or "", 40).lower()
        decision_key = decision if decision in DECISIONS else "other"
        decision_label = tt(f"decision_{decision}") if decision in DECISIONS else (decision or "?")
        recipient = clean_header_text(data.recipient or "", RECIPIENT_LIMIT)
        requested_by = shown(data.requested_by or "", LABEL_LIMIT, withheld)
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
            # Ours since `given` exists; a row from before holds free text: withheld whole
            # if it carries a link or a contact (a reset link above all).
            "summary": (
                clean_header_text(data.summary or "", LONG_TEXT_LIMIT)
                if data.given is not None
                else shown(data.summary or "", LONG_TEXT_LIMIT, withheld)
            ),
            "given_rows": [
                (tt(_GIVEN_LABELS.get(key, f"fact_{key}")), f"“{shown(str(value), LABEL_LIMIT, withheld)}”")
                for key in GIVEN
                if (value := (data.given or {}).get(key))
            ],
            "requested_by": requested_by,
            "approval_id": approval_id,
            "decide_by": decide_by,
            "approve_url": clean_url(data.approve_url, "approve_url"),
            "reject_url": clean_url(data.reject_url, "reject_url"),
            "fact_rows": rows,
        }

    def samples(self) -> tuple[OversightNoticeData, OversightNoticeData]:
        full = OversightNoticeData(
            kind="password_reset",
            recipient="ada@example.com",
            decision="held",
            summary="Password reset email to ada@example.com, requested by key:support1",
            requested_by="agent support-bot (client ops-console)",
            approval_id="apr_01J9SAMPLE",
            given={
                "user_id": "u-1842",
                "name": "Ada Lovelace",
                "ip": "203.0.113.42",
                "device": "Chrome 131 on Windows 10",
                "location": "Berlin, Germany",
            },
            approve_url="https://reset.example.com/approvals/apr_01J9SAMPLE/approve?sig=sample",
            reject_url="https://reset.example.com/approvals/apr_01J9SAMPLE/reject?sig=sample",
            expires_at=SAMPLE_NOW + timedelta(hours=24),
        )
        minimal = OversightNoticeData(
            kind="password_reset",
            recipient="ada@example.com",
            decision="sent",
            summary="Password reset email",
            requested_by="agent support-bot",
        )
        return full, minimal

    def sample(self, env: RenderEnv) -> OversightNoticeData:
        # Approve/reject links only where a server answers them (see app.build_app).
        full = self.samples()[0]
        if env.approval_links is None or full.approval_id is None or full.expires_at is None:
            return replace(full, approve_url=None, reject_url=None)
        links = env.approval_links(full.approval_id, full.expires_at)
        return replace(full, approve_url=links["approve_url"], reject_url=links["reject_url"])

    def load(self, payload: Mapping[str, Any]) -> Payload:
        expires = payload.get("expires_at")
        return Payload(
            about_kind=str(payload["about_kind"]),
            about_recipient=str(payload["about_recipient"]),
            decision=str(payload["decision"]),
            summary=str(payload["summary"]),
            requested_by=str(payload["requested_by"]),
            approval_id=payload.get("approval_id"),
            expires_at=from_ts(float(expires)) if expires else None,
            timezone=payload.get("timezone"),
            given={str(k): str(v) for k, v in given.items()}
            if isinstance(given := payload.get("given"), dict)
            else None,
        )

    def data(self, env: RenderEnv, payload: Payload, token: str | None, now: datetime) -> OversightNoticeData:
        links: dict[str, str] = {}
        if env.approval_links is not None and payload.approval_id and payload.expires_at:
            links = env.approval_links(payload.approval_id, payload.expires_at)
        return OversightNoticeData(
            kind=payload.about_kind,
            recipient=payload.about_recipient,
            decision=payload.decision,
            summary=payload.summary,
            requested_by=payload.requested_by,
            approval_id=payload.approval_id,
            expires_at=payload.expires_at,
            given=payload.given,
            **links,
        )


KIND = OversightNotice()
