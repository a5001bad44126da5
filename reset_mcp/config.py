"""Settings from `RESET_MCP_*` environment variables, checked once at start.

Every rule a user can get wrong (TTL range, https reset URL, key length) is checked
here, so a bad value stops the server at start with a message naming the variable,
never at the first send.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reset_mcp.canonical import Canon, dotless_domain_set
from reset_mcp.errors import ConfigError
from reset_mcp.mail.base import MailOptions
from reset_mcp.vocab import Mode

EmailBackendName = Literal["outbox", "smtp", "memory", "resend", "postmark", "sendgrid", "mailgun", "webhook"]
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
MIN_SECRET_BYTES = 32
MAX_HTTP_WORKERS = 64  # `serve --workers` and RESET_MCP_HTTP_WORKERS
APP_NAME = "reset-mcp"


def default_data_dir() -> Path:
    """The platform's per-user data folder (~/.local/share/reset-mcp on Linux, honouring XDG_DATA_HOME).

    Not a folder relative to the working directory: desktop hosts and uvx start servers in
    `/` or a temporary folder, and `keys create` run in a shell must find what `serve` uses.
    """
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


class Settings(BaseSettings):
    """The effective configuration. Field names are the variables without `RESET_MCP_`."""

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

    email_backend: EmailBackendName = "outbox"
    outbox_dir: Path | None = Field(None, description="Folder for .eml files (default DATA_DIR/outbox).")
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

    directory_url: str | None = Field(
        None, description="Your app's account lookup endpoint (https; http only to loopback)."
    )
    directory_secret: SecretStr | None = Field(None, description="HMAC key signing directory lookups (32+ bytes).")
    directory_sql: str | None = Field(None, description="One SELECT with :account, run read-only on your database.")
    # A SecretStr because the URL may carry the app database's password, and `doctor`
    # prints every setting: a SecretStr is shown only as "set".
    directory_database_url: SecretStr | None = Field(
        None, description="sqlite:///path or postgresql://... that DIRECTORY_SQL reads."
    )
    directory_timeout_seconds: float = Field(5.0, gt=0, le=30, description="Whole lookup, retry included.")
    trust_caller_recipient: bool = Field(
        False, description="Without a directory, allow a public bind where the agent names the recipient."
    )
    directory_answer_step_ms: float = Field(
        100.0,
        ge=0,
        le=5000,
        description="With a directory, a reset is answered at a whole multiple of this many ms after it began, "
        "so a known and an unknown account take the same time; 0 turns it off.",
    )
    caller_sends_per_hour: int = Field(
        60, ge=1, description="Emails one caller (API key) may ask for in an hour, across all addresses."
    )

    http_host: str = "127.0.0.1"
    http_port: int = Field(8765, ge=0, le=65535)
    allowed_hosts: str | None = Field(None, description="Comma-separated Host values for a public bind.")
    allowed_origins: str | None = Field(None, description="Comma-separated Origins for a public bind.")
    stateless_http: bool = False
    http_workers: int = Field(
        1, ge=1, le=MAX_HTTP_WORKERS, description="HTTP worker processes on one port (more than one implies stateless)."
    )
    http_max_connections: int = Field(
        1000,
        ge=16,
        le=1_000_000,
        description="Open HTTP connections a process keeps; past it a new one displaces the longest-idle.",
    )
    http_header_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="A request's line and headers must arrive within this (slowloris)."
    )
    http_body_timeout_seconds: float = Field(
        30.0, gt=0, le=3600, description="A request's body must arrive within this once its headers have."
    )
    public_url: str | None = Field(None, description="Base URL of this server, for links to /admin.")
    oauth_issuer: str | None = Field(
        None,
        description="OAuth 2.1 authorization server (issuer URL) whose JWT access tokens are accepted beside API keys.",
    )
    oauth_audience: str | None = Field(
        None, description="The audience (RFC 8707 resource) an access token must name (default: the public MCP URL)."
    )
    oauth_jwks_cache_seconds: float = Field(
        300.0, ge=0, le=86400, description="How long the issuer's keys are kept before they are fetched again."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

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
        parts = urlsplit(value.replace("{token}", "t"))
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and (parts.hostname or "") in LOCAL_HOSTS:
            return value
        raise ValueError("must be an https:// URL (http:// is allowed only for localhost / 127.0.0.1)")

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

    @field_validator("oauth_issuer", "oauth_audience")
    @classmethod
    def _oauth_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.query or parts.fragment:
            raise ValueError("must be a URL without a query or fragment")
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and (parts.hostname or "") in LOCAL_HOSTS:
            return value
        raise ValueError("must be an https:// URL (http:// is allowed only for localhost / 127.0.0.1)")

    @field_validator("forgot_password_url")
    @classmethod
    def _page_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and (parts.hostname or "") in LOCAL_HOSTS:
            return value
        raise ValueError("must be an https:// URL (http:// is allowed only for localhost / 127.0.0.1)")

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
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes (try: openssl rand -base64 48)")
        return value

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

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        if self.email_backend == "smtp" and not self.smtp_host:
            raise ValueError("RESET_MCP_SMTP_HOST is required with EMAIL_BACKEND=smtp")
        return self

    @field_validator("directory_url")
    @classmethod
    def _directory_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and (parts.hostname or "") in LOCAL_HOSTS:
            return value
        raise ValueError("must be an https:// URL (http:// is allowed only for localhost / 127.0.0.1)")

    @field_validator("directory_secret")
    @classmethod
    def _directory_secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes (try: openssl rand -base64 48)")
        return value

    @field_validator("directory_database_url")
    @classmethod
    def _directory_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value() if value is not None else None
        if url is not None and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @model_validator(mode="after")
    def _directory_checks(self) -> Settings:
        # Each half alone is a directory that silently does nothing: refuse it at start.
        if self.directory_url and self.directory_sql:
            raise ValueError("set RESET_MCP_DIRECTORY_URL or RESET_MCP_DIRECTORY_SQL, not both")
        if self.directory_url and self.directory_secret is None:
            raise ValueError("RESET_MCP_DIRECTORY_SECRET is required with RESET_MCP_DIRECTORY_URL")
        if bool(self.directory_sql) != bool(self.directory_database_url):
            raise ValueError("RESET_MCP_DIRECTORY_SQL and RESET_MCP_DIRECTORY_DATABASE_URL go together")
        return self

    # Derived values -----------------------------------------------------------------
    @property
    def has_directory(self) -> bool:
        return bool(self.directory_url or self.directory_sql)

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
    def effective_oauth_audience(self) -> str:
        """The resource an OAuth access token must be issued for: this server's MCP URL."""
        return self.oauth_audience or self.public_base_url + "/mcp"

    @property
    def effective_smtp_port(self) -> int:
        return self.smtp_port or {"none": 25, "starttls": 587, "tls": 465}[self.smtp_tls]

    @property
    def public_base_url(self) -> str:
        """This server's base URL for links to it: RESET_MCP_PUBLIC_URL, else the HTTP bind."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.http_host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"http://{host}:{self.http_port}"

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
