"""The audit log's hash chain: how an entry's hash is made, and how the chain is checked.

Each entry's hash covers its own fields and the previous entry's hash, so editing a
row breaks its own hash and deleting one breaks the link of the next. The first entry
links to GENESIS. Entries never carry a token or a secret: callers pass only ids,
hashes' prefixes and decisions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reset_mcp.store.records import AuditEntry

GENESIS = "0" * 64


# The canonical form hashed (shared: `json.dumps` with options builds an encoder a call).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def entry_hash(
    prev_hash: str, seq: int, at: datetime, actor: str, action: str, subject: str, detail: dict[str, Any]
) -> str:
    body = _CANONICAL.encode([seq, round(at.timestamp(), 6), actor, action, subject, detail])
    return hashlib.sha256(f"{prev_hash}|{body}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    problem: str | None = None
    bad_seq: int | None = None


def verify_chain(entries: Iterable[AuditEntry]) -> ChainReport:
    """Walk the entries in seq order; the first mismatch is reported with its seq."""
    prev_hash = GENESIS
    prev_seq = 0
    checked = 0
    for entry in entries:
        if entry.seq != prev_seq + 1:
            return ChainReport(False, checked, f"entry {prev_seq + 1} is missing (next is {entry.seq})", entry.seq)
        if entry.prev_hash != prev_hash:
            return ChainReport(False, checked, f"entry {entry.seq} does not link to entry {prev_seq}", entry.seq)
        expected = entry_hash(
            entry.prev_hash, entry.seq, entry.at, entry.actor, entry.action, entry.subject, entry.detail
        )
        if expected != entry.hash:
            return ChainReport(False, checked, f"entry {entry.seq} was altered", entry.seq)
        prev_hash, prev_seq = entry.hash, entry.seq
        checked += 1
    return ChainReport(True, checked)
