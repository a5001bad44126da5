"""The email backend's settings: which backend, and how to reach SMTP or an HTTP email API.

`Settings.mail_options()` hands the backend these (and the outbox folder), nothing else.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

EmailBackendName = Literal["outbox", "smtp", "memory", "resend", "postmark", "sendgrid", "mailgun", "webhook"]


class MailSettings(BaseModel):
    """A group of `Settings`: field names are the variables without `RESET_MCP_`."""

    email_backend: EmailBackendName = "outbox"
    smtp_host: str = "localhost"
    smtp_port: int | None = Field(None, description="Default 25 / 587 / 465 by SMTP_TLS.")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_tls: Literal["none", "starttls", "tls"] = "starttls"
    smtp_timeout_seconds: float = Field(10.0, gt=0, le=120)
    email_api_key: SecretStr | None = None
    email_api_url: str | None = None
    mailgun_domain: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_bearer: SecretStr | None = None
    postmark_message_stream: str = "outbound"

    @model_validator(mode="after")
    def _cross_checks(self) -> MailSettings:
        if self.email_backend == "smtp" and not self.smtp_host:
            raise ValueError("RESET_MCP_SMTP_HOST is required with EMAIL_BACKEND=smtp")
        return self

    @property
    def effective_smtp_port(self) -> int:
        return self.smtp_port or {"none": 25, "starttls": 587, "tls": 465}[self.smtp_tls]
