"""The audit log's hash chain: how an entry's hash is made, and how the chain is checked.

Each entry's hash covers its own fields and the previous entry's hash, so editing a
row breaks its own hash and deleting one breaks the link of the next. The first entry
links to GENESIS. Entries never carry a token or a secret: callers pass only ids,
hashes' prefixes and decisions.

Two hash versions live in one chain. Version 1 (64 hex digits) is plain SHA-256: anyone
who can write to the database can edit rows and hash them again. Version 2,
`v2:<kid>:<hex>`, is HMAC-SHA256 under a key derived from the signing secret (the
secret's key id names it, so entries written before a rotation still verify while that
secret is in the ring). A store opened with an `AuditKey` writes version 2; the first
keyed entry's MAC covers the last version 1 hash, which pins the older entries as they
were. Once a chain holds a keyed entry, checked with the key ring:
- a later version 1 entry is refused (re-hashing without the key is a downgrade);
- the newest entry must be keyed under a key of the ring (`audit_head.rekey_head` writes one at
  start after an upgrade or a rotation, so a quiet log is not a false alarm).
Deleting the newest entries leaves a valid shorter chain: only a record kept outside
the database sees that (`reset_mcp.audit_anchor`, passed to `verify_chain`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reset_mcp.jsontext import encoder
from reset_mcp.store.records import AuditEntry

if TYPE_CHECKING:
    from reset_mcp.tokens import TokenSigner

GENESIS = "0" * 64
KEYED = "v2"
LEGACY_LABEL = "sha256"  # how `audit_head.rekey_head` names an unkeyed head
_LEGACY = re.compile(r"[0-9a-f]{64}")
_KEYED = re.compile(r"v2:([0-9a-f]{16}):([0-9a-f]{64})")


# The canonical form hashed: compact, keys sorted, ASCII (the encoder built once: `jsontext`).
_CANONICAL = encoder(sort_keys=True, ensure_ascii=True, default=str)


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The key new entries are keyed with, and its id (the signing secret's kid)."""

    kid: str
    key: bytes
    # HMAC-SHA256 keyed with `key` once; each entry's MAC copies it (`hmac.digest` would
    # set the key up, and have OpenSSL fetch SHA-256 by name, for every entry).
    keyed: hmac.HMAC = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keyed", hmac.new(self.key, digestmod=hashlib.sha256))

    @classmethod
    def current(cls, signer: TokenSigner) -> AuditKey:
        """The key new entries get: the one of the current signing secret."""
        return cls(signer.kid, signer.audit_ring[signer.kid])


def detail_text(detail: Any) -> str:
    """An entry's detail as its hash covers it; the store writes this text too (the same
    options as `store.sql_common.dump`), so a new entry's detail is encoded once."""
    return _CANONICAL(detail)


def _message(
    prev_hash: str, seq: int, at: datetime, actor: str, action: str, subject: str, detail: Any, text: str | None
) -> bytes:
    # The JSON of [seq, at, actor, action, subject, detail]: an array's text is its items'
    # joined by ",", so the detail's own text (`detail_text`) goes in as it is.
    head = _CANONICAL([seq, round(at.timestamp(), 6), actor, action, subject])
    return f"{prev_hash}|{head[:-1]},{detail_text(detail) if text is None else text}]".encode()


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    detail: dict[str, Any],
    *,
    text: str | None = None,
) -> str:
    """Version 1: plain SHA-256 (what entries written without a key carry). `text`: the
    detail's `detail_text`, when the caller has it."""
    return hashlib.sha256(_message(prev_hash, seq, at, actor, action, subject, detail, text)).hexdigest()


def keyed_entry_hash(
    key: AuditKey,
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    detail: Any,
    *,
    text: str | None = None,
) -> str:
    """Version 2: HMAC-SHA256 under `key`, written `v2:<kid>:<hex>`."""
    mac = key.keyed.copy()
    mac.update(_message(prev_hash, seq, at, actor, action, subject, detail, text))
    return f"{KEYED}:{key.kid}:{mac.hexdigest()}"


def hash_kid(digest: str) -> str | None:
    """The key id a version 2 hash names; None for version 1 (or anything else)."""
    match = _KEYED.fullmatch(digest)
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class ChainReport:
    ok: bool
    checked: int
    problem: str | None = None
    bad_seq: int | None = None
    keyed: int = 0  # entries whose HMAC was checked
    # Entries 1..unchecked_through sit before an entry keyed under a key the ring lacks
    # (a retired secret): their links hold, their contents could not be checked.
    unchecked_through: int = 0


def verify_chain(
    entries: Iterable[AuditEntry],
    keys: Mapping[str, bytes] | None = None,
    *,
    anchors: Mapping[int, str] | None = None,
) -> ChainReport:
    """Walk the entries in seq order; the first problem is reported with its seq.

    `keys` (kid -> key, e.g. `TokenSigner.audit_ring`) checks keyed entries and turns on
    the rules for a keyed chain (see the module docstring); without it a keyed entry is
    a problem, since it cannot be checked. `anchors` (seq -> hash, `audit_anchor.read`)
    are heads recorded outside the database: each must match, and none may lie beyond
    the chain's end.
    """
    prev_hash, prev_seq, checked, keyed, unchecked = GENESIS, 0, 0, 0, 0
    ring = {kid: AuditKey(kid, key) for kid, key in keys.items()} if keys is not None else {}
    head_kid: str | None = None
    anchors = anchors or {}

    def broken(problem: str, seq: int) -> ChainReport:
        return ChainReport(False, checked, problem, seq, keyed, unchecked)

    for entry in entries:
        seq = entry.seq
        if seq != prev_seq + 1:
            return broken(f"entry {prev_seq + 1} is missing (next is {seq})", seq)
        if entry.prev_hash != prev_hash:
            return broken(f"entry {seq} does not link to entry {prev_seq}", seq)
        fields = (entry.prev_hash, seq, entry.at, entry.actor, entry.action, entry.subject, entry.detail)
        head_kid = hash_kid(entry.hash)
        if head_kid is not None:
            if keys is None:
                return broken(f"entry {seq} is keyed: check the chain with the key ring", seq)
            key = ring.get(head_kid)
            if key is None:
                unchecked = seq
            elif keyed_entry_hash(key, *fields) != entry.hash:
                return broken(f"entry {seq} was altered", seq)
            else:
                keyed += 1
        elif _LEGACY.fullmatch(entry.hash):
            if keys is not None and keyed:
                return broken(f"entry {seq} is not keyed, but an earlier entry is (hashed again without the key)", seq)
            if entry_hash(*fields) != entry.hash:
                return broken(f"entry {seq} was altered", seq)
        else:
            return broken(f"entry {seq} was altered", seq)
        if seq in anchors and anchors[seq] != entry.hash:
            return broken(f"entry {seq} is not the one the anchor file recorded", seq)
        prev_hash, prev_seq = entry.hash, seq
        checked += 1
    if keys is not None and checked:
        if head_kid is None:
            return broken(f"the newest entry ({prev_seq}) is not keyed", prev_seq)
        if head_kid not in keys:
            return broken(f"the newest entry ({prev_seq}) is keyed under key id {head_kid}, not in the ring", prev_seq)
    beyond = max((s for s in anchors if s > prev_seq), default=None)
    if beyond is not None:
        return broken(
            f"the anchor file records entry {beyond} but the chain ends at {prev_seq}: entries were deleted",
            prev_seq + 1,
        )
    return ChainReport(True, checked, keyed=keyed, unchecked_through=unchecked)
