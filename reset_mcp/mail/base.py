"""The email backend contract: the message a backend carries, what it answers, and its options.

Only the dispatcher (`outbox/dispatcher.py`) calls `EmailBackend.send`, and only for
outbox rows the oversight policy released. `MailOptions` is all a backend is told of the
configuration (`Settings.mail_options()` builds it), so the mail package never sees the
rest of the settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import SecretStr


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
    - It may be called concurrently from several tasks. A backend with a limit of its
      own (a pool of connections) says so in an optional `max_concurrency: int`: the
      dispatcher then never starts more sends at once, so none waits inside `send` for a
      connection while its outbox row's lease runs.
    - A cancelled `send` leaves no connection behind in an unknown state.
    - `aclose` releases connections; calling it twice is harmless.
    """

    name: str

    async def send(self, email: OutgoingEmail) -> DeliveryReceipt: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Probe(Protocol):
    """A backend that can check, without sending anything, that it could deliver
    (`reset-mcp doctor --probe`). `probe` answers what it checked, in a few words, or
    raises `DeliveryError` saying what failed; it never shows a secret."""

    async def probe(self) -> str: ...


@dataclass(frozen=True, slots=True)
class MailOptions:
    """The email backend's configuration; field names are the RESET_MCP_ variables'."""

    email_backend: str
    outbox_dir: Path
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_tls: str = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = 10.0
    email_api_key: SecretStr | None = None
    email_api_url: str | None = None
    mailgun_domain: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_bearer: SecretStr | None = None
    postmark_message_stream: str = "outbound"
