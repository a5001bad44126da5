"""Idempotency keys: a retried call with the same key and arguments gets the first answer.

An agent that retries after a timeout must not send a second email nor spend a second
unit of any limit. The key belongs to the caller (two agents' keys never meet) and lives
24 hours. The first call claims the key inside its own transaction, before any limit is
counted, and stores its answer in that same transaction: a racing duplicate waits for
that commit (PostgreSQL) or runs after it (SQLite), finds the key taken and gets the
stored answer. The same key with other arguments is refused. An answer that did
nothing (rate_limited) is not kept: after `retry_after` the same key may try again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from reset_mcp.errors import ConflictError, InvalidInputError
from reset_mcp.store import Store, Tx
from reset_mcp.store.records import IdempotencyRecord
from reset_mcp.validation import single_line

WINDOW = timedelta(hours=24)
KEY_MAX = 128
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Idem:
    caller_id: str
    key: str
    tool: str
    args_hash: str


class Replayed(Exception):
    """Raised inside a transaction whose key was already claimed: rolls its work back."""

    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__("idempotency key already used")
        self.record = record


def idem_for(caller_id: str, key: str | None, tool: str, args: Mapping[str, Any]) -> Idem | None:
    """The key of this call, or None without one; `args` are the tool's other arguments."""
    if key is None:
        return None
    checked = single_line(key, "idempotency_key", KEY_MAX)
    if not checked:
        raise InvalidInputError("idempotency_key: must not be blank")
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return Idem(caller_id, checked, tool, hashlib.sha256(canonical.encode()).hexdigest())


def _answer(record: IdempotencyRecord, idem: Idem) -> dict[str, Any]:
    if record.tool != idem.tool or record.args_hash != idem.args_hash:
        raise ConflictError("idempotency_key was already used with other arguments in the last 24 hours; use a new key")
    if record.answer is None:  # not reachable through a committed row; kept for safety
        raise ConflictError("the first call with this idempotency_key is still running; retry shortly")
    return record.answer


async def earlier(store: Store, idem: Idem | None, model: type[M], now: datetime) -> M | None:
    """The stored answer of an earlier call with this key (None: no live one). A read: the
    common retry is answered without taking the write lock or asking the directory."""
    if idem is None:
        return None
    async with store.reading() as tx:
        record = await tx.get_idempotency(idem.caller_id, idem.key)
    if record is None or record.created_at < now - WINDOW:
        return None
    return model.model_validate(_answer(record, idem))


async def claim(tx: Tx, idem: Idem | None, now: datetime) -> None:
    """Take the key for this transaction's work; `Replayed` if an earlier call has it."""
    if idem is None:
        return
    record = await tx.claim_idempotency(idem.caller_id, idem.key, idem.tool, idem.args_hash, now, now - WINDOW)
    if record is not None:
        raise Replayed(record)


def replayed(exc: Replayed, idem: Idem | None, model: type[M]) -> M:
    assert idem is not None
    return model.model_validate(_answer(exc.record, idem))


async def remember(tx: Tx, idem: Idem | None, answer: BaseModel) -> None:
    if idem is not None:
        await tx.answer_idempotency(idem.caller_id, idem.key, answer.model_dump(mode="json"))


async def update(store: Store, idem: Idem | None, answer: BaseModel) -> None:
    """The final answer, once known after the commit (a delivery's outcome)."""
    if idem is not None:
        async with store.transaction() as tx:
            await tx.answer_idempotency(idem.caller_id, idem.key, answer.model_dump(mode="json"))


async def forget(tx: Tx, idem: Idem | None) -> None:
    """Give the key back (the call did nothing: rate limited), so a later retry may use it."""
    if idem is not None:
        await tx.release_idempotency(idem.caller_id, idem.key)
