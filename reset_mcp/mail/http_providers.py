"""Builds the HTTP email API backend that `RESET_MCP_EMAIL_BACKEND` names.

`open_email_backend` imports this module only when an HTTP provider is configured, so
httpx stays out of the domain. The backends live in `providers`, their shared client and
error classification in `http_base`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reset_mcp.errors import ConfigError
from reset_mcp.mail.base import EmailBackend, MailOptions
from reset_mcp.mail.providers import (
    SIGNATURE_HEADER,
    MailgunBackend,
    PostmarkBackend,
    ResendBackend,
    SendGridBackend,
    WebhookBackend,
    sign_webhook,
    verify_webhook_signature,
)

if TYPE_CHECKING:
    import httpx
    from pydantic import SecretStr

    from reset_mcp.clock import Clock
    from reset_mcp.mail.base import EmailBackend

__all__ = [
    "HTTP_BACKENDS",
    "SIGNATURE_HEADER",
    "MailgunBackend",
    "PostmarkBackend",
    "ResendBackend",
    "SendGridBackend",
    "WebhookBackend",
    "build_http_backend",
    "sign_webhook",
    "verify_webhook_signature",
]

HTTP_BACKENDS = ("resend", "postmark", "sendgrid", "mailgun", "webhook")


def _reveal(value: SecretStr | None) -> str | None:
    if value is None:
        return None
    secret = value.get_secret_value().strip()
    return secret or None


def _required(value: str | None, variable: str, kind: str) -> str:
    if not value or not value.strip():
        raise ConfigError(f"{variable} must be set when RESET_MCP_EMAIL_BACKEND={kind}")
    return value.strip()


def build_http_backend(
    settings: MailOptions,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
) -> EmailBackend:
    """The configured HTTP backend; a missing or bad setting is a `ConfigError` now."""
    kind = settings.email_backend.strip().lower()
    if kind not in HTTP_BACKENDS:
        raise ConfigError(
            f"RESET_MCP_EMAIL_BACKEND={settings.email_backend!r} is not a known email backend; "
            f"choose outbox, smtp, memory, {', '.join(HTTP_BACKENDS)}"
        )
    base_url = settings.email_api_url or None
    if kind == "webhook":
        return WebhookBackend(
            _required(settings.webhook_url, "RESET_MCP_WEBHOOK_URL", kind),
            _required(_reveal(settings.webhook_secret), "RESET_MCP_WEBHOOK_SECRET", kind),
            bearer=_reveal(settings.webhook_bearer),
            transport=transport,
            clock=clock,
        )
    api_key = _required(_reveal(settings.email_api_key), "RESET_MCP_EMAIL_API_KEY", kind)
    if kind == "resend":
        return ResendBackend(api_key, base_url=base_url, transport=transport, clock=clock)
    if kind == "postmark":
        return PostmarkBackend(
            api_key,
            message_stream=settings.postmark_message_stream,
            base_url=base_url,
            transport=transport,
            clock=clock,
        )
    if kind == "sendgrid":
        return SendGridBackend(api_key, base_url=base_url, transport=transport, clock=clock)
    domain = _required(settings.mailgun_domain, "RESET_MCP_MAILGUN_DOMAIN", kind)
    return MailgunBackend(api_key, domain, base_url=base_url, transport=transport, clock=clock)
