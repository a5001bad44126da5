"""Identifiers: short, unguessable, and typed by prefix so a log line says what it names."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    # 128 bits from `secrets`: unguessable ids keep one caller from probing another's
    # requests, and a reset token's jti (an HMAC of its request id) rests on 128 random bits.
    return f"{prefix}_{secrets.token_urlsafe(16)}"
