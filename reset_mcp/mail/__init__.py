"""Email backends: the one interface (`base.py`), and a factory that loads drivers lazily.

Drivers (aiosmtplib, httpx) are imported inside their own modules, which the factory
imports on demand, so the domain never pulls them in.
"""

from __future__ import annotations

from reset_mcp.mail.base import DeliveryReceipt, EmailBackend, MailOptions, OutgoingEmail

__all__ = ["DeliveryReceipt", "EmailBackend", "MailOptions", "OutgoingEmail", "open_email_backend"]


def open_email_backend(options: MailOptions) -> EmailBackend:
    """Build the backend that `RESET_MCP_EMAIL_BACKEND` names."""
    # Imported here, not at the top: each backend's driver loads only when it is used.
    kind = options.email_backend
    if kind == "outbox":
        from reset_mcp.mail.outbox_dir import OutboxDirBackend

        return OutboxDirBackend(options.outbox_dir)
    if kind == "smtp":
        from reset_mcp.mail.smtp import SmtpBackend

        return SmtpBackend.from_options(options)
    if kind == "memory":
        from reset_mcp.mail.memory import MemoryBackend

        return MemoryBackend()
    from reset_mcp.mail.http_providers import build_http_backend

    return build_http_backend(options)
