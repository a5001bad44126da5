"""From an outbox row to an `OutgoingEmail`: render at delivery time, re-mint the token.

An outbox row holds only what rendering needs. For a kind that carries a token that
includes the token's claims but not its `jti`; the jti is re-derived from the send id
under the secret (see `tokens.py`), so the link exists only in memory, for the few
milliseconds between rendering and handing the message to the backend. A preview of a
held email renders the same way with `MASK` in place of the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reset_mcp.compose import RenderedEmail, clean_header_text
from reset_mcp.emails.kind import MASK, Claims, RenderEnv, from_ts
from reset_mcp.emails.registry import EmailKinds
from reset_mcp.mail import OutgoingEmail
from reset_mcp.store.records import OutboxRow, SendRecord
from reset_mcp.tokens import TokenClaims, TokenSigner


def render_sample(kinds: EmailKinds, env: RenderEnv, kind: str, *, locale: str | None = None) -> RenderedEmail:
    """`kind` with its sample data as this configuration sends it (`preview_email`, `reset-mcp
    preview`): the configured links, MASK for a token; nothing minted, nothing written."""
    return env.composer.render(kind, kinds[kind].sample(env), locale=locale)


class MessageFactory:
    def __init__(
        self, kinds: EmailKinds, env: RenderEnv, signer: TokenSigner, *, from_address: str, from_name: str
    ) -> None:
        self.kinds = kinds
        self.env = env
        self._signer = signer
        self._from_address = from_address
        self._from_name = clean_header_text(from_name, 80)
        self._domain = from_address.rpartition("@")[2] or "reset-mcp.local"

    @property
    def signer(self) -> TokenSigner:
        """The key ring links are minted with (the dispatcher checks token rows against it)."""
        return self._signer

    def message_id(self, row_id: str) -> str:
        return f"<{row_id}@{self._domain}>"

    def token_for(self, send_id: str, claims: Mapping[str, Any] | Claims) -> str:
        c = claims if isinstance(claims, Claims) else Claims.load(claims)
        return self._signer.mint(
            TokenClaims(
                jti=self._signer.jti_for(send_id, c.kid),
                user_id=c.user_id,
                email=c.email,
                issued_at=from_ts(c.iat),
                expires_at=from_ts(c.exp),
                kid=c.kid,
            )
        )

    def render(self, row: OutboxRow, now: datetime) -> RenderedEmail:
        kind = self.kinds[row.kind]
        token = self.token_for(row.send_id, row.payload["claims"]) if kind.carries_token else None
        return kind.render(self.env, row.payload, token, now)

    def preview(self, send: SendRecord, now: datetime) -> RenderedEmail:
        """The email `send` would go out as if released now, any token replaced by MASK."""
        kind = self.kinds[send.kind]
        return kind.render(self.env, send.payload, MASK if kind.carries_token else None, now)

    def sample(self, kind: str, *, locale: str | None = None) -> RenderedEmail:
        return render_sample(self.kinds, self.env, kind, locale=locale)

    def build(self, row: OutboxRow, now: datetime) -> OutgoingEmail:
        rendered = self.render(row, now)
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
