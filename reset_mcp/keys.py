"""HTTP API keys: `rmcp_<id>_<secret>`, scoped, stored only as a hash of the secret.

The id (8 lowercase letters and digits) is a lookup handle shown by `keys list`; the
secret is 32 random bytes, url-safe. Only `sha256(secret)` is stored: the secret has
256 bits of entropy, so a plain hash is enough (no salt or slow hash is needed to
resist guessing), and a database dump yields no usable key. Comparison is constant
time, and an unknown id costs the same hash and compare as a wrong secret.

Scopes:
    send          the agent's tools (request a reset, alerts, record events); reads only
                  its own requests and what they showed
    redeem        the app's reset page: verify and consume a token, report "this wasn't me"
    approve       the overseer: list, approve and reject held emails (HTTP only, never MCP)
    contacts:read any address's contact history and abuse detail (get_contact,
                  check_reset_abuse, GET /v1/contacts): support staff, not an agent
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable
from datetime import datetime

from reset_mcp.errors import InvalidInputError
from reset_mcp.store import Tx
from reset_mcp.store.records import ApiKeyRecord
from reset_mcp.validation import single_line
from reset_mcp.vocab import Scope

SCOPES = tuple(Scope)
PREFIX = "rmcp_"
ID_LENGTH = 8
_ID_ALPHABET = string.ascii_lowercase + string.digits
_MAX_PRESENTED = 200  # a real key is 57 characters; anything far longer is not one
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(presented: str) -> tuple[str, str] | None:
    """Split a presented key into (id, secret); None when it is not shaped like one."""
    if not isinstance(presented, str) or len(presented) > _MAX_PRESENTED or not presented.startswith(PREFIX):
        return None
    rest = presented[len(PREFIX) :]
    key_id, sep, secret = rest[:ID_LENGTH], rest[ID_LENGTH : ID_LENGTH + 1], rest[ID_LENGTH + 1 :]
    if sep != "_" or not secret or any(c not in _ID_ALPHABET for c in key_id) or len(key_id) != ID_LENGTH:
        return None
    return key_id, secret


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes, deduplicated in canonical order; refuses unknown or none."""
    given = set(scopes)
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise InvalidInputError(f"scope: unknown {', '.join(unknown)} (choose from {', '.join(SCOPES)})")
    if not given:
        raise InvalidInputError("scope: give at least one of " + ", ".join(SCOPES))
    return tuple(s for s in SCOPES if s in given)


async def create_key(tx: Tx, name: str, scopes: Iterable[str], now: datetime) -> tuple[str, ApiKeyRecord]:
    """Store a new key and return its plaintext (shown once, never stored) with its record."""
    checked_name = single_line(name, "name", 100)
    if not checked_name:
        raise InvalidInputError("name: must not be empty")
    checked_scopes = check_scopes(scopes)
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))
    secret = secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        id=key_id, name=checked_name, scopes=checked_scopes, secret_hash=hash_secret(secret), created_at=now
    )
    await tx.insert_api_key(record)
    return f"{PREFIX}{key_id}_{secret}", record


async def verify_key(tx: Tx, presented: str) -> ApiKeyRecord | None:
    """The active key `presented` names, or None (malformed, unknown, wrong secret, revoked)."""
    parsed = parse_key(presented)
    if parsed is None:
        return None
    key_id, secret = parsed
    record = await tx.get_api_key(key_id)
    expected = record.secret_hash if record is not None else _DUMMY_HASH
    matches = hmac.compare_digest(hash_secret(secret), expected)
    if record is None or not matches or record.revoked_at is not None:
        return None
    return record
