"""The one exception tree of reset-mcp.

    ResetMCPError                  every error this package raises on purpose
    ├── ConfigError                bad settings, refused at start with a clear message
    ├── InvalidInputError          a caller's input was refused; nothing was written
    ├── NotFoundError              no such request, approval, key or outbox row
    ├── ConflictError              the state forbids it (already decided, expired, ...)
    ├── PermissionDeniedError      the caller may not do this (scope, same credentials)
    ├── RateLimitedError           too many in a window: wait `retry_after` seconds
    │   └── TooManyFailuresError   too many failed token checks
    ├── StoreError                 the database failed (driver errors wrapped `from exc`)
    │   ├── StoreUnavailableError  no connection could be had in time (pool exhausted)
    │   │   ├── StoreBusyError     another process held the database's write lock past the deadline
    │   │   └── StoreTimeoutError  the database did not answer within the call's bound
    │   └── StoreFullError         the disk under the database is full
    ├── DirectoryUnavailableError  the account directory could not answer (down, slow, odd answer)
    └── DeliveryError              an email backend failed
        ├── TransientDeliveryError worth retrying (timeouts, 4xx SMTP, HTTP 429/5xx)
        │   └── MaybeDeliveredError the link was lost after the message went out: it may have arrived
        └── PermanentDeliveryError never worth retrying (5xx SMTP, HTTP 400/401/403/422)

`refusal(exc)` is the one mapping from this tree to what a caller is told: the HTTP
status (REST, the approvals page), the message (also the MCP tool error's text) and a
`Retry-After`. Every message here must be safe to show an agent: no token, no secret,
no traceback; a database error's own text goes to the log only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


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


class RateLimitedError(ResetMCPError):
    """Too many of something in a window; `retry_after` seconds until one more fits."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(f"{message}; try again in {retry_after} seconds")
        self.retry_after = retry_after


class TooManyFailuresError(RateLimitedError):
    """A caller failed too many token checks in a row (NIST SP 800-63B's cap)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed token checks", retry_after)


class StoreError(ResetMCPError):
    """The store failed; the driver's error is the `__cause__`."""


class StoreUnavailableError(StoreError):
    """No database connection could be had within the configured wait."""


class StoreBusyError(StoreUnavailableError):
    """Another process held the database's write lock until this call's deadline (SQLite)."""


class StoreTimeoutError(StoreUnavailableError):
    """A statement was not answered within the call's bound (`bounds.CallBounds`)."""


class StoreFullError(StoreError):
    """The disk under the database is full: nothing could be written until space is freed."""


class DirectoryUnavailableError(ResetMCPError):
    """The app's account directory gave no usable answer: unreachable, timed out, refused
    our request or answered in an unexpected shape. Not "no such account" (that is None).
    Nothing is sent; the caller is told to try later."""


class DeliveryError(ResetMCPError):
    """An email backend failed to hand a message over."""

    # True when the message may have reached the provider although it did not say so.
    maybe_delivered = False

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # Seconds the provider asked us to wait (SMTP has none; HTTP `Retry-After`).
        self.retry_after = retry_after


class TransientDeliveryError(DeliveryError):
    """Retrying later may succeed: connection refused, timeout, SMTP 4xx, HTTP 429/5xx."""


class MaybeDeliveredError(TransientDeliveryError):
    """The link was lost (or timed out) after the message went out, before the provider's
    answer: it may have arrived. Retry only after the backoff, with the same Message-ID,
    never at once on a fresh connection."""

    maybe_delivered = True


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot succeed: the provider rejected the message or our credentials."""


STORE_UNAVAILABLE = "the reset-mcp database is unavailable; try again shortly"
STORE_BUSY = "the reset-mcp database is busy (another process held its write lock); try again in a few seconds"
STORE_FULL = "the disk under the reset-mcp database is full; nothing can be saved until space is freed"
# What a caller is told of each kind of store failure, and how long to wait (`Retry-After`).
STORE_ANSWERS: tuple[tuple[type[StoreError], str, int], ...] = (
    (StoreBusyError, STORE_BUSY, 2),
    (StoreFullError, STORE_FULL, 60),
    (StoreError, STORE_UNAVAILABLE, 5),
)
_STATUS: tuple[tuple[type[ResetMCPError], int], ...] = (
    (InvalidInputError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (PermissionDeniedError, 403),
    (RateLimitedError, 429),
    (StoreError, 503),
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a caller is told about an error, whatever the channel."""

    status: int  # the HTTP status
    message: str  # safe to show any caller
    retry_after: int | None = None  # seconds, for a `Retry-After` header

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


def refusal(exc: ResetMCPError) -> Refusal:
    """The answer to `exc`. A store error is logged here with its own text (which can name
    tables and paths) and answered with a stable message."""
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
    if isinstance(exc, StoreError):
        log.error("store error: %s", exc)
        message, wait = next((text, wait) for kind, text, wait in STORE_ANSWERS if isinstance(exc, kind))
        return Refusal(status, message, wait)
    retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
    return Refusal(status, str(exc), retry_after)
