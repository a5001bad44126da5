"""The store: everything reset-mcp keeps, behind the contract in `contract.py`.

`open_store(url)` opens the backend a URL names (SQLite, the embedded default, or
PostgreSQL for many instances); drivers load only when their backend is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reset_mcp.audit_anchor import AuditAnchor
from reset_mcp.errors import ConfigError
from reset_mcp.store.contract import Store, Tx
from reset_mcp.store.records import (
    AdminSessionRecord,
    ApiKeyRecord,
    ApprovalRecord,
    AuditEntry,
    ContactEvent,
    ContactFacts,
    OutboxRow,
    SendRecord,
    TokenRecord,
)

if TYPE_CHECKING:
    from reset_mcp.audit import AuditKey

__all__ = [
    "AdminSessionRecord",
    "ApiKeyRecord",
    "ApprovalRecord",
    "AuditEntry",
    "ContactEvent",
    "ContactFacts",
    "OutboxRow",
    "SendRecord",
    "Store",
    "TokenRecord",
    "Tx",
    "open_store",
]


async def open_store(
    url: str,
    *,
    pool_size: int = 10,
    pool_timeout: float = 5.0,
    migrate: bool = True,
    audit_key: AuditKey | None = None,
    anchor_file: Path | str | None = None,
    clock: Literal["database", "caller"] = "database",
) -> Store:
    """Open the store a URL names (`sqlite:///path`, `postgresql://...`); drivers load lazily.

    With `audit_key` new audit entries are keyed (HMAC, see `reset_mcp.audit`); with
    `anchor_file` every commit that appended audit entries records the chain's new head
    there (`reset_mcp.audit_anchor`); the store closes the file with itself.
    `clock="caller"` makes PostgreSQL keep outbox leases and due times by the callers'
    `now`, as SQLite always does (for tests that drive time with a fake clock)."""
    if not url.startswith(("sqlite://", "postgresql://", "postgres://")):
        raise ConfigError("RESET_MCP_DATABASE_URL must start with sqlite:/// or postgresql://")
    anchor = AuditAnchor.open(anchor_file) if anchor_file is not None else None
    try:
        if url.startswith("sqlite://"):
            from reset_mcp.store.sqlite import SqliteStore

            store: Store = await SqliteStore.open(url, audit_key=audit_key, anchor=anchor)
        else:
            from reset_mcp.store.postgres import PostgresStore

            store = await PostgresStore.open(
                url, pool_size=pool_size, pool_timeout=pool_timeout, audit_key=audit_key, anchor=anchor, clock=clock
            )
    except BaseException:
        if anchor is not None:
            anchor.close()
        raise
    if migrate:
        await store.migrate()
    return store
