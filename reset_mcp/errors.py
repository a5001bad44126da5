"""The one exception tree of reset-mcp.

    ResetMCPError                  every error this package raises on purpose
    ├── ConfigError                bad settings, refused at start with a clear message
    ├── InvalidInputError          a caller's input was refused; nothing was written
    ├── NotFoundError              no such request, approval, key or outbox row
    ├── ConflictError              the state forbids it (already decided, expired, ...)
    ├── PermissionDeniedError      the caller may not do this (scope, same credentials)
    ├── StoreError                 the database failed (driver errors wrapped `from exc`)
    │   └── StoreUnavailableError  no connection could be had in time (pool exhausted)
    └── DeliveryError              an email backend failed
        ├── TransientDeliveryError worth retrying (timeouts, 4xx SMTP, HTTP 429/5xx)
        └── PermanentDeliveryError never worth retrying (5xx SMTP, HTTP 400/401/403/422)

The MCP layer maps `ResetMCPError` to a tool error carrying `str(exc)`, so every
message here must be safe to show an agent: no token, no secret, no traceback.
"""

from __future__ import annotations


class ResetMCPError(Exception):
    """Base of every error raised on purpose; its message is safe to show a caller."""


class ConfigError(ResetMCPError):
    """The configuration is unusable; raised at start, never at the first send."""


class InvalidInputError(ResetMCPError):
    """Input was refused before anything was written."""


class NotFoundError(ResetMCPError):
    """The named object does not exist."""


class ConflictError(ResetMCPError):
    """The object exists but its state forbids the operation."""


class PermissionDeniedError(ResetMCPError):
    """The caller lacks the right to do this."""


class StoreError(ResetMCPError):
    """The store failed; the driver's error is the `__cause__`."""


class StoreUnavailableError(StoreError):
    """No database connection could be had within the configured wait."""


class DeliveryError(ResetMCPError):
    """An email backend failed to hand a message over."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # Seconds the provider asked us to wait (SMTP has none; HTTP `Retry-After`).
        self.retry_after = retry_after


class TransientDeliveryError(DeliveryError):
    """Retrying later may succeed: connection refused, timeout, SMTP 4xx, HTTP 429/5xx."""


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot succeed: the provider rejected the message or our credentials."""
