"""The audit chain's head: read it (for /metrics) and re-key it at start.

Kept apart from `reset_mcp.audit`, which the store imports to hash entries: these two
run on a store transaction.
"""

from __future__ import annotations

from datetime import datetime

from reset_mcp.audit import GENESIS, LEGACY_LABEL, AuditKey, hash_kid
from reset_mcp.store import Tx
from reset_mcp.store.records import AuditEntry

REKEY_ACTION = "audit_key_changed"


async def rekey_head(tx: Tx, key: AuditKey, now: datetime) -> AuditEntry | None:
    """Append an entry keyed under `key` when the newest entry is not (after the upgrade
    to keyed entries, or a rotation of the secret); None when it already is, or the log
    is empty. Run at start, in a transaction of a store opened with `key`."""
    newest = await tx.list_audit(newest=True, limit=1)
    if not newest or hash_kid(newest[0].hash) == key.kid:
        return None
    was = hash_kid(newest[0].hash) or LEGACY_LABEL
    return await tx.append_audit(
        at=now, actor="reset-mcp", action=REKEY_ACTION, subject="audit", detail={"from": was, "to": key.kid}
    )


async def chain_head(tx: Tx) -> tuple[int, str]:
    """The newest entry's (seq, hash), (0, GENESIS) for an empty log: for /metrics, where
    a scraper keeps a history of heads outside the database."""
    newest = await tx.list_audit(newest=True, limit=1)
    return (newest[0].seq, newest[0].hash) if newest else (0, GENESIS)
