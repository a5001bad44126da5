"""Identifiers: short, unguessable, and typed by prefix so a log line says what it names."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    # 96 bits: unguessable ids keep one caller from probing another's requests.
    return f"{prefix}_{secrets.token_urlsafe(12)}"
