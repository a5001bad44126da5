"""Settings from `RESET_MCP_*` environment variables, checked once at start.

Every rule a user can get wrong (TTL range, https reset URL, key length) is checked
here, so a bad value stops the server at start with a message naming the variable,
never at the first send.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reset_mcp.canonical import Canon, dotless_domain_set
from reset_mcp.config.checks import MIN_SECRET_BYTES, https_or_loopback, long_enough
from reset_mcp.config.directory import DirectorySettings
from reset_mcp.config.http import MAX_HTTP_WORKERS, HttpSettings
from reset_mcp.config.mail import MailSettings
from reset_mcp.errors import ConfigError
from reset_mcp.mail.base import MailOptions
from reset_mcp.vocab import Mode

__all__ = [
    "MAX_HTTP_WORKERS",
    "MIN_SECRET_BYTES",
    "NO_DIRECTORY_WARNING",
    "Settings",
    "default_data_dir",
    "load_settings",
]

APP_NAME = "reset-mcp"


def default_data_dir() -> Path:
    """The platform's per-user data folder (~/.local/share/reset-mcp on Linux, honouring XDG_DATA_HOME).

    Not a folder relative to the working directory: desktop hosts and uvx start servers in
    `/` or a temporary folder, and `keys create` run in a shell must find what `serve` uses.
    """
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


class Settings(BaseSettings, MailSettings, HttpSettings, DirectorySettings):
    """The effective configuration. Field names are the variables without `RESET_MCP_`;
    the email backend's, the HTTP server's and the account directory's are in their own modules."""

    model_config = SettingsConfigDict(env_prefix="RESET_MCP_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the SQLite file, outbox and key live (default: the platform's user data folder).",
    )
    secret: SecretStr | None = Field(None, description="Signing key (32+ bytes); generated if unset.")
    secret_fallbacks: SecretStr | None = Field(
        None, description="Older signing keys, comma separated, still accepted on verify."
    )
    reset_url: str = Field(
        "http://localhost:8000/reset?token={token}", description="Reset page URL template with {token}."
    )
    report_url: str | None = Field(None, description="'This wasn't me' URL template with {token}.")
    token_ttl_minutes: int = Field(15, description="Reset link lifetime, 15 to 60 minutes.")
    from_address: str = Field("no-reply@example.com", description="Sender address.")
    sender_name: str | None = Field(None, description="Sender display name (default: product name).")
    product_name: str = Field("Example App", description="Product name shown in emails.")
    logo_url: str | None = None
    primary_color: str = "#2563eb"
    support_url: str | None = None
    support_email: str | None = None
    forgot_password_url: str | None = Field(
        None, description="Your app's page to ask for a reset link: the security alert's button (else SUPPORT_URL)."
    )
    postal_address: str | None = None
    template_dir: Path | None = Field(None, description="Folder whose templates override the built-ins.")
    database_url: str | None = Field(None, description="sqlite:///path or postgresql://...")
    db_pool_size: int = Field(10, ge=1, le=200)
    db_pool_timeout_seconds: float = Field(5.0, gt=0, le=120)

    outbox_dir: Path | None = Field(None, description="Folder for .eml files (default DATA_DIR/outbox).")

    delivery_max_attempts: int = Field(8, ge=1, le=50)
    delivery_backoff_seconds: float = Field(15.0, gt=0, description="First retry delay; doubles each try.")
    delivery_backoff_max_seconds: float = Field(900.0, gt=0)
    delivery_lease_seconds: float = Field(60.0, gt=0)
    send_wait_seconds: float = Field(
        3.0,
        ge=0,
        le=60,
        description="How long a tool call waits for its email to be handed over before answering `queued` "
        "(the worker finishes the delivery).",
    )
    worker_poll_seconds: float = Field(1.0, gt=0, le=60, description="How often the worker looks for due rows.")
    retention_days: int = Field(
        90,
        ge=0,
        le=3650,
        description="The worker purges what ended more than this many days ago, every 6 hours; 0 turns it off. "
        "Abuse detection compares a request with 90 days of history.",
    )

    oversight_mode: Mode = Mode.AUTONOMOUS
    oversight_email: str | None = None
    oversight_timezone: str | None = Field(None, description="IANA timezone for times in the overseer's notices.")
    policy_file: Path | None = None
    approval_window_minutes: int | None = Field(None, ge=1, le=7 * 24 * 60)
    max_pending_per_caller: int = Field(
        50,
        ge=1,
        le=100_000,
        description="Emails one caller may have waiting for approval; past it a held one is blocked.",
    )

    rate_limit_account_per_hour: int = Field(5, ge=1)
    rate_limit_ip_per_hour: int = Field(20, ge=1)
    subaddress_separator: str = Field(
        "+",
        max_length=1,
        description="Limits and risk count `a+tag@x` as `a@x` (the email still goes to the address given); "
        "empty turns it off.",
    )
    dotless_domains: str = Field(
        "gmail.com,googlemail.com",
        description="Comma-separated domains whose mailboxes ignore dots (`a.b@` is `ab@`), for limits and risk.",
    )
    geoip_db: Path | None = None
    audit_anchor_file: Path | None = Field(
        None,
        description="Append-only file recording the audit chain's head after each commit, so a cut-off tail is "
        "found; keep it where a database writer cannot reach.",
    )

    caller_sends_per_hour: int = Field(
        60, ge=1, description="Emails one caller (API key) may ask for in an hour, across all addresses."
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    tracing: Literal["auto", "on", "off"] = Field(
        "auto", description="OpenTelemetry spans per MCP message: auto (when a tracer or exporter is set up), on, off."
    )

    @field_validator("token_ttl_minutes")
    @classmethod
    def _ttl_in_range(cls, value: int) -> int:
        if not 15 <= value <= 60:
            raise ValueError(f"must be between 15 and 60 minutes (got {value})")
        return value

    @field_validator("reset_url", "report_url")
    @classmethod
    def _url_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.count("{token}") != 1:
            raise ValueError("must contain {token} exactly once")
        https_or_loopback(value.replace("{token}", "t"))
        return value

    @field_validator("from_address", "oversight_email", "support_email")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        # Syntax only (no DNS): a sender the mail system would refuse is found at start,
        # not at the first reset. `.test` domains pass, as in a test environment.
        if value is None:
            return None
        try:
            validate_email(value.strip(), check_deliverability=False, test_environment=True)
        except EmailNotValidError as exc:
            raise ValueError(f"not a valid email address ({exc})") from None
        return value.strip()

    @field_validator("data_dir", "outbox_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Resolved once, at start: every message names the folder that is really used.
        return None if value is None else Path(os.path.abspath(value.expanduser()))

    @field_validator("forgot_password_url")
    @classmethod
    def _page_url(cls, value: str | None) -> str | None:
        return https_or_loopback(value)

    @field_validator("oversight_timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ValueError, OSError, ZoneInfoNotFoundError):
            raise ValueError("must be an IANA timezone name like Europe/Berlin") from None
        return value

    @field_validator("secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        return long_enough(value)

    @field_validator("subaddress_separator")
    @classmethod
    def _separator(cls, value: str) -> str:
        # A letter, digit, dot or `@` would fold distinct mailboxes (`a.b` into `a`) together.
        if value and (value.isalnum() or value in '.@"' or not value.isprintable() or value.isspace()):
            raise ValueError("must be one punctuation character such as + or - (or empty to turn it off)")
        return value

    @field_validator("primary_color")
    @classmethod
    def _colour(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"#(?:[0-9a-fA-F]{3}){1,2}", value):
            raise ValueError("must be a hex colour like #2563eb")
        return value

    # Derived values -----------------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'reset-mcp.db'}"

    @property
    def effective_outbox_dir(self) -> Path:
        return self.outbox_dir or self.data_dir / "outbox"

    def mail_options(self) -> MailOptions:
        """What the email backend is told of the configuration (and nothing else)."""
        return MailOptions(
            email_backend=self.email_backend,
            outbox_dir=self.effective_outbox_dir,
            smtp_host=self.smtp_host,
            smtp_port=self.effective_smtp_port,
            smtp_tls=self.smtp_tls,
            smtp_username=self.smtp_username,
            smtp_password=self.smtp_password,
            smtp_timeout_seconds=self.smtp_timeout_seconds,
            email_api_key=self.email_api_key,
            email_api_url=self.email_api_url,
            mailgun_domain=self.mailgun_domain,
            webhook_url=self.webhook_url,
            webhook_secret=self.webhook_secret,
            webhook_bearer=self.webhook_bearer,
            postmark_message_stream=self.postmark_message_stream,
        )

    @property
    def effective_approval_window_minutes(self) -> int:
        return self.approval_window_minutes or self.token_ttl_minutes

    @property
    def dotless_domain_set(self) -> frozenset[str]:
        return dotless_domain_set(self.dotless_domains)

    @property
    def canon(self) -> Canon:
        """The keys limits, locks and risk count on (a mailbox, a host network)."""
        return Canon(self.subaddress_separator, self.dotless_domain_set)

    @property
    def fallback_secrets(self) -> list[str]:
        raw = self.secret_fallbacks.get_secret_value() if self.secret_fallbacks else ""
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        for key in keys:
            if len(key.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(f"RESET_MCP_SECRET_FALLBACKS: every key must be at least {MIN_SECRET_BYTES} bytes")
        return keys


NO_DIRECTORY_WARNING = (
    "no account directory (RESET_MCP_DIRECTORY_URL or RESET_MCP_DIRECTORY_SQL): the caller chooses the "
    "recipient, user id and name of every reset; configure one before an agent you do not fully trust calls this server"
)


def load_settings(**overrides: object) -> Settings:
    """Read the environment (overrides win) and turn validation errors into one ConfigError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            name = f"RESET_MCP_{field.upper()}" if err["loc"] else "settings"
            # Never echo the rejected value: it may be a secret.
            lines.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
