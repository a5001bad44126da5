"""Signed, time-limited reset tokens (JWT, HS256) and the key ring that signs them.

Why the token can be re-minted instead of stored: the `jti` is an HMAC of the request
id under a key derived from the secret, and every other claim is kept in the store. The
dispatcher rebuilds the identical JWT at delivery time, so the database holds only
`sha256(jti)` and the claims; a dump of it opens no account without the secret.

`decode` never raises: it answers a claims object or a precise failure reason. The
precise reason goes to the audit log; callers outside show one generic answer.

The same secret keys a MAC over each token row's identity (`row_mac`): whoever can
write to the database but does not hold the secret cannot point a row at another
account, address, expiry or request without the MAC failing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import jwt

from reset_mcp.jsontext import encoder

if TYPE_CHECKING:
    from reset_mcp.store.records import TokenRecord

ALGORITHM = "HS256"
PURPOSE = "password_reset"
MAX_TOKEN_CHARS = 4096
# Tolerate small clock differences between instances for `iat`, never for `exp`.
IAT_LEEWAY_SECONDS = 30
ROW_MAC_VERSION = "v1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _derive(secret: bytes, label: str) -> bytes:
    # Domain separation: the signing key, the jti key and the key id never coincide.
    return hmac.new(secret, f"reset-mcp/{label}/v1".encode(), hashlib.sha256).digest()


_COMPACT = encoder()  # what PyJWT writes the payload with: compact, keys in order
_ROW_MESSAGE = encoder(ensure_ascii=True)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _jws_header(kid: str) -> bytes:
    """The header segment PyJWT writes for HS256 with a `kid` (keys sorted, no spaces)."""
    header = {"alg": ALGORITHM, "kid": kid, "typ": "JWT"}
    return _b64(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())


def jti_hash(jti: str) -> str:
    """The only form of a token identifier the store ever sees."""
    return hashlib.sha256(jti.encode()).hexdigest()


def _row_message(record: TokenRecord) -> bytes:
    # A JSON array: unambiguous however the fields are spelled (no separator to smuggle).
    expires_us = (record.expires_at - _EPOCH) // timedelta(microseconds=1)
    fields = ["reset-mcp/token-row", record.send_id, record.user_id, record.email, expires_us, record.jti_hash]
    return _ROW_MESSAGE([*fields, record.kid]).encode()


@dataclass(frozen=True, slots=True)
class TokenClaims:
    jti: str
    user_id: str
    email: str
    issued_at: datetime
    expires_at: datetime
    kid: str


@dataclass(frozen=True, slots=True)
class DecodeResult:
    claims: TokenClaims | None
    failure: str | None  # malformed | bad_signature | wrong_purpose | expired


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    signing: bytes
    jti: bytes
    header: bytes  # the JWS header segment, the same for every token of this key
    row: bytes  # MACs token rows (`row_mac`)
    audit: bytes  # keys the audit chain (`reset_mcp.audit`)
    # HMAC-SHA256 keyed once with `signing`, `jti`, `row`: each MAC copies one, instead of
    # `hmac.digest` setting the key up (and OpenSSL fetching SHA-256 by name) every call.
    signing_mac: hmac.HMAC = field(repr=False, compare=False)
    jti_mac: hmac.HMAC = field(repr=False, compare=False)
    row_mac: hmac.HMAC = field(repr=False, compare=False)


def _mac(keyed: hmac.HMAC, message: bytes) -> bytes:
    """`hmac.digest(key, message, "sha256")` from an HMAC object keyed with `key`."""
    h = keyed.copy()
    h.update(message)
    return h.digest()


def _row_mac(key: _Key, record: TokenRecord) -> str:
    return f"{ROW_MAC_VERSION}:{_mac(key.row_mac, _row_message(record)).hex()}"


class TokenSigner:
    """Signs with the newest key, verifies with the whole ring (like Django's fallbacks)."""

    def __init__(self, secret: str, fallbacks: Sequence[str] = ()) -> None:
        keys = [self._key(s.encode()) for s in (secret, *fallbacks)]
        self._current = keys[0]
        self._ring = {k.kid: k for k in reversed(keys)}

    @staticmethod
    def _key(secret: bytes) -> _Key:
        kid = _derive(secret, "kid").hex()[:16]
        signing, jti, row = _derive(secret, "jwt"), _derive(secret, "jti"), _derive(secret, "token-row")
        return _Key(
            kid=kid,
            signing=signing,
            jti=jti,
            header=_jws_header(kid),
            row=row,
            audit=_derive(secret, "audit"),
            signing_mac=hmac.new(signing, digestmod=hashlib.sha256),
            jti_mac=hmac.new(jti, digestmod=hashlib.sha256),
            row_mac=hmac.new(row, digestmod=hashlib.sha256),
        )

    @property
    def kid(self) -> str:
        return self._current.kid

    @property
    def kids(self) -> tuple[str, ...]:
        """The key ids of the ring, the current one first."""
        return (self._current.kid, *(k for k in self._ring if k != self._current.kid))

    @property
    def audit_ring(self) -> dict[str, bytes]:
        """The audit chain's keys by key id, the current key first."""
        ring = {self._current.kid: self._current.audit}
        ring.update((k.kid, k.audit) for k in self._ring.values())
        return ring

    def row_mac(self, record: TokenRecord) -> str:
        """The MAC a token row carries, under the key of the row's `kid` (the key that
        signs its link): over its send id, user id, email, expiry, jti hash and kid."""
        key = self._ring.get(record.kid)
        if key is None:
            raise ValueError("token key id is not in the key ring")
        return _row_mac(key, record)

    def row_mac_ok(self, record: TokenRecord) -> bool:
        """Whether the row is as the server wrote it. False without a MAC, with a MAC made
        by another key, or when the row's kid has left the ring (its link is dead too)."""
        key = self._ring.get(record.kid)
        if key is None or not record.mac:
            return False
        return hmac.compare_digest(_row_mac(key, record), record.mac)

    def jti_for(self, request_id: str, kid: str | None = None) -> str:
        """256 bits that only a holder of the secret can derive from the request id."""
        key = self._ring.get(kid or self._current.kid, self._current)
        return _b64(_mac(key.jti_mac, request_id.encode())).decode()

    def mint(self, claims: TokenClaims) -> str:
        key = self._ring.get(claims.kid)
        if key is None:
            raise ValueError("token key id is not in the key ring")
        payload = {
            "sub": claims.user_id,
            "email": claims.email,
            "jti": claims.jti,
            "iat": int(claims.issued_at.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
            "purpose": PURPOSE,
        }
        # Signed here rather than by `jwt.encode`: the same bytes PyJWT writes (header
        # and payload JSON, base64url, HMAC-SHA256; tests/test_tokens.py compares the two
        # for many claims) at a fifth of the cost, since this runs on every delivery and
        # PyJWT re-validates its headers and signs through the pure-Python `hmac.new`.
        # Verifying stays PyJWT's (`decode` below).
        signing_input = key.header + b"." + _b64(_COMPACT(payload).encode())
        return (signing_input + b"." + _b64(_mac(key.signing_mac, signing_input))).decode()

    def decode(self, token: str, now: datetime) -> DecodeResult:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            return DecodeResult(None, "malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return DecodeResult(None, "malformed")
        if header.get("alg") != ALGORITHM or "crit" in header:
            return DecodeResult(None, "bad_signature")
        key = self._ring.get(str(header.get("kid", "")))
        if key is None:
            return DecodeResult(None, "bad_signature")
        try:
            payload = jwt.decode(
                token,
                key.signing,
                algorithms=[ALGORITHM],  # pinned: "none" and RS/ES confusions are refused
                options={"require": ["exp", "iat", "jti", "sub"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            return DecodeResult(None, "bad_signature")
        except jwt.PyJWTError:
            return DecodeResult(None, "malformed")
        if payload.get("purpose") != PURPOSE:
            return DecodeResult(None, "wrong_purpose")
        try:
            issued = datetime.fromtimestamp(int(payload["iat"]), UTC)
            expires = datetime.fromtimestamp(int(payload["exp"]), UTC)
            claims = TokenClaims(
                jti=str(payload["jti"]),
                user_id=str(payload["sub"]),
                email=str(payload.get("email", "")),
                issued_at=issued,
                expires_at=expires,
                kid=key.kid,
            )
        except (TypeError, ValueError, OverflowError):
            return DecodeResult(None, "malformed")
        if expires <= now:
            return DecodeResult(claims, "expired")
        if (issued - now).total_seconds() > IAT_LEEWAY_SECONDS:
            return DecodeResult(None, "malformed")
        return DecodeResult(claims, None)
