"""Email backends: the one interface, the message it carries, and a lazy factory.

Only the dispatcher (`reset_mcp.outbox.dispatcher`) calls `EmailBackend.send`, and only for
outbox rows the oversight policy released; nothing else in the package talks to a
backend. Drivers (aiosmtplib, httpx) are imported inside their own modules, which the
factory imports on demand, so the domain never pulls them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from reset_mcp.config import Settings


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """A fully rendered email, ready for a backend.

    Header values (`subject`, `to`, `from_name`) are already free of CR/LF: the
    composer strips them and `mime.build_message` refuses any that slip through.
    `message_id` is stable across retries of one outbox row, and `idempotency_key` is
    what providers that support one receive, so a retry after an unknown outcome does
    not make a duplicate.
    """

    message_id: str  # "<...@domain>", stable for the outbox row
    idempotency_key: str
    kind: str  # password_reset | security_alert | password_changed | oversight_notice ...
    from_address: str
    from_name: str
    to: str
    subject: str
    text: str
    html: str
    date: datetime
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """What a backend learned when the provider accepted the message."""

    provider_message_id: str | None = None


class EmailBackend(Protocol):
    """Hands one message to a mail system.

    Contract:
    - `send` returns only once the provider has accepted the message.
    - It raises `TransientDeliveryError` when a later retry may succeed (with
      `retry_after` when the provider said how long to wait) and
      `PermanentDeliveryError` when it cannot; any driver error is wrapped with
      `raise ... from exc`, so callers never see a driver exception.
    - It may be called concurrently from several tasks.
    - `aclose` releases connections; calling it twice is harmless.
    """

    name: str

    async def send(self, email: OutgoingEmail) -> DeliveryReceipt: ...

    async def aclose(self) -> None: ...


def open_email_backend(settings: Settings) -> EmailBackend:
    """Build the backend that `RESET_MCP_EMAIL_BACKEND` names; drivers load lazily."""
    kind = settings.email_backend
    if kind == "outbox":
        from reset_mcp.mail.outbox_dir import OutboxDirBackend

        return OutboxDirBackend(settings.effective_outbox_dir)
    if kind == "smtp":
        from reset_mcp.mail.smtp import SmtpBackend

        return SmtpBackend.from_settings(settings)
    if kind == "memory":
        from reset_mcp.mail.memory import MemoryBackend

        return MemoryBackend()
    from reset_mcp.mail.http_providers import build_http_backend

    return build_http_backend(settings)
