"""The HTTP server's settings: where it binds, who may reach it, how it guards itself, OAuth."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from reset_mcp.config.checks import https_or_loopback

MAX_HTTP_WORKERS = 64  # `serve --workers` and RESET_MCP_HTTP_WORKERS


class HttpSettings(BaseModel):
    """A group of `Settings`: field names are the variables without `RESET_MCP_`."""

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

    @field_validator("oauth_issuer", "oauth_audience")
    @classmethod
    def _oauth_url(cls, value: str | None) -> str | None:
        return https_or_loopback(value, query=False)

    @property
    def public_base_url(self) -> str:
        """This server's base URL for links to it: RESET_MCP_PUBLIC_URL, else the HTTP bind."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.http_host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"http://{host}:{self.http_port}"

    @property
    def effective_oauth_audience(self) -> str:
        """The resource an OAuth access token must be issued for: this server's MCP URL."""
        return self.oauth_audience or self.public_base_url + "/mcp"
