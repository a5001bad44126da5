"""Opaque page cursors for list answers: where the last page ended, and for which listing.

A cursor is base64url JSON: the last row's position in the listing's order (its
`created_at` and id) and the listing's filter, so a cursor given back continues the
same listing whichever tool or resource first answered it. It grants nothing: every
row it can reach is one the caller may list anyway. A cursor that does not decode is
the caller's mistake, answered as such.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from reset_mcp.errors import InvalidInputError

CURSOR_MAX = 512


@dataclass(frozen=True, slots=True)
class Position:
    created_at: datetime
    id: str
    requested_by: str | None = None  # the listing's filter: one caller's own sends


def encode(position: Position) -> str:
    raw = {"t": position.created_at.timestamp(), "i": position.id}
    if position.requested_by is not None:
        raw["by"] = position.requested_by
    text = json.dumps(raw, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def decode(cursor: str) -> Position:
    refused = InvalidInputError("cursor: not a cursor from this listing; leave it out to start at the beginning")
    if not isinstance(cursor, str) or not cursor or len(cursor) > CURSOR_MAX:
        raise refused
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = datetime.fromtimestamp(float(raw["t"]), UTC)
        row_id, by = raw["i"], raw.get("by")
    except (binascii.Error, ValueError, TypeError, KeyError, OverflowError, OSError):
        raise refused from None
    if not isinstance(row_id, str) or not (by is None or isinstance(by, str)):
        raise refused
    return Position(when, row_id, by)
