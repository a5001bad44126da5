"""The account directory's settings: where the recipient of a reset comes from (issue 20)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from reset_mcp.config.checks import https_or_loopback, long_enough


class DirectorySettings(BaseModel):
    """A group of `Settings`: field names are the variables without `RESET_MCP_`."""

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

    @field_validator("directory_url")
    @classmethod
    def _directory_url(cls, value: str | None) -> str | None:
        return https_or_loopback(value)

    @field_validator("directory_secret")
    @classmethod
    def _directory_secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        return long_enough(value)

    @field_validator("directory_database_url")
    @classmethod
    def _directory_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        url = value.get_secret_value() if value is not None else None
        if url is not None and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @model_validator(mode="after")
    def _directory_checks(self) -> DirectorySettings:
        # Each half alone is a directory that silently does nothing: refuse it at start.
        if self.directory_url and self.directory_sql:
            raise ValueError("set RESET_MCP_DIRECTORY_URL or RESET_MCP_DIRECTORY_SQL, not both")
        if self.directory_url and self.directory_secret is None:
            raise ValueError("RESET_MCP_DIRECTORY_SECRET is required with RESET_MCP_DIRECTORY_URL")
        if bool(self.directory_sql) != bool(self.directory_database_url):
            raise ValueError("RESET_MCP_DIRECTORY_SQL and RESET_MCP_DIRECTORY_DATABASE_URL go together")
        return self

    @property
    def has_directory(self) -> bool:
        return bool(self.directory_url or self.directory_sql)
