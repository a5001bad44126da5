"""What a process does once, when it opens the store: trust the rows written before an
upgrade that it can vouch for, and key the audit chain's head.

- `token_rows.seal_unsealed`: token rows from before schema version 5 carry no MAC; the
  live ones (at most an hour of links) get one, so those links keep working.
- `audit_head.rekey_head`: when the newest audit entry is unkeyed (the upgrade) or keyed
  under another secret (a rotation), one entry keyed under the current secret pins the
  chain, so `audit verify` with the key ring holds on a quiet log.
In one transaction, in this order: the audit lock is taken last (see `deps.lock_account`).
"""

from __future__ import annotations

import logging

from reset_mcp.audit import AuditKey
from reset_mcp.audit_head import rekey_head
from reset_mcp.clock import Clock
from reset_mcp.store import Store
from reset_mcp.token_rows import seal_unsealed
from reset_mcp.tokens import TokenSigner

log = logging.getLogger("reset_mcp")


async def on_open(store: Store, signer: TokenSigner, clock: Clock, *, audit_key: AuditKey | None) -> None:
    """`audit_key`: the key the store was opened with (None: its chain stays unkeyed)."""
    now = clock.now()
    async with store.transaction() as tx:
        sealed = await seal_unsealed(tx, signer, now)
        marker = await rekey_head(tx, audit_key, now) if audit_key is not None else None
    if sealed:
        log.info("sealed %d live token rows written before token rows were MACed", sealed)
    if marker is not None:
        log.info("audit chain keyed under key id %s from entry %d", audit_key.kid if audit_key else "", marker.seq)
