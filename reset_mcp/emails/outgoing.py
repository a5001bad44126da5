"""From an outbox row to an `OutgoingEmail`: render at delivery time, re-mint the token.

An outbox row holds only what rendering needs. For a reset email that includes the
token's claims but not its `jti`; the jti is re-derived from the send id under the
secret (see `tokens.py`), so the link exists only in memory, for the few milliseconds
between rendering and handing the message to the backend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from reset_mcp.compose import Composer, clean_header_text
from reset_mcp.compose.models import (
    OversightNoticeData,
    PasswordChangedData,
    PasswordResetData,
    RenderedEmail,
    RequestContext,
    SecurityAlertData,
)
from reset_mcp.mail import OutgoingEmail
from reset_mcp.store.records import OutboxRow
from reset_mcp.tokens import TokenClaims, TokenSigner


def context_payload(at: datetime, ip: str, device: str, location: str) -> dict[str, Any]:
    return {"at": at.timestamp(), "ip": ip, "device": device, "location": location}


def _context(data: dict[str, Any] | None) -> RequestContext | None:
    if not data:
        return None
    return RequestContext(
        at=datetime.fromtimestamp(data["at"], UTC), ip=data["ip"], device=data["device"], location=data["location"]
    )


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class MessageFactory:
    def __init__(
        self,
        composer: Composer,
        signer: TokenSigner,
        *,
        reset_url: str,
        report_url: str | None,
        from_address: str,
        from_name: str,
        approval_links: Any = None,
    ) -> None:
        self._composer = composer
        self._signer = signer
        self._reset_url = reset_url
        self._report_url = report_url
        self._from_address = from_address
        self._from_name = clean_header_text(from_name, 80)
        self._domain = from_address.rpartition("@")[2] or "reset-mcp.local"
        # Set by the HTTP layer when approval by email is on: builds signed links.
        self.approval_links = approval_links

    def message_id(self, row_id: str) -> str:
        return f"<{row_id}@{self._domain}>"

    def token_for(self, send_id: str, claims: dict[str, Any]) -> str:
        kid = claims["kid"]
        return self._signer.mint(
            TokenClaims(
                jti=self._signer.jti_for(send_id, kid),
                user_id=claims["user_id"],
                email=claims["email"],
                issued_at=_ts(claims["iat"]),
                expires_at=_ts(claims["exp"]),
                kid=kid,
            )
        )

    def render(self, row: OutboxRow) -> RenderedEmail:
        p = row.payload
        loc = {"locale": p.get("locale"), "timezone": p.get("timezone")}
        if row.kind == "password_reset":
            token = self.token_for(row.send_id, p["claims"])
            ctx = _context(p["context"])
            assert ctx is not None
            return self._composer.password_reset(
                PasswordResetData(
                    reset_url=self._reset_url.replace("{token}", token),
                    report_url=self._report_url.replace("{token}", token) if self._report_url else None,
                    expires_at=_ts(p["claims"]["exp"]),
                    ttl_minutes=int(p["ttl_minutes"]),
                    context=ctx,
                    to_name=p.get("to_name"),
                ),
                **loc,
            )
        if row.kind == "security_alert":
            attempts = [c for c in (_context(a) for a in p.get("attempts", [])) if c is not None]
            return self._composer.security_alert(
                SecurityAlertData(
                    reason=p["reason"], attempts=attempts, to_name=p.get("to_name"), details=p.get("details")
                ),
                **loc,
            )
        if row.kind == "password_changed":
            return self._composer.password_changed(
                PasswordChangedData(
                    changed_at=_ts(p["changed_at"]), context=_context(p.get("context")), to_name=p.get("to_name")
                ),
                **loc,
            )
        if row.kind == "oversight_notice":
            links = {}
            if self.approval_links is not None and p.get("approval_id"):
                links = self.approval_links(p["approval_id"], _ts(p["expires_at"]))
            return self._composer.oversight_notice(
                OversightNoticeData(
                    kind=p["about_kind"],
                    recipient=p["about_recipient"],
                    decision=p["decision"],
                    summary=p["summary"],
                    requested_by=p["requested_by"],
                    approval_id=p.get("approval_id"),
                    expires_at=_ts(p["expires_at"]) if p.get("expires_at") else None,
                    **links,
                ),
                **loc,
            )
        raise ValueError(f"unknown email kind {row.kind!r}")

    def build(self, row: OutboxRow, now: datetime) -> OutgoingEmail:
        rendered = self.render(row)
        return OutgoingEmail(
            message_id=row.message_id,
            idempotency_key=row.id,
            kind=row.kind,
            from_address=self._from_address,
            from_name=self._from_name,
            to=row.recipient,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            date=row.created_at,
            headers={"X-Reset-MCP-Kind": row.kind, "Auto-Submitted": "auto-generated"},
        )
