"""One deadline for a whole call, shared by every wait in the store.

A tool call may run several transactions; each used to wait up to its own limit for a
lock or a pooled connection, so a call could wait several times that. Inside
`with deadline(seconds):` every such wait (SQLite's write lock held by another process,
a PostgreSQL connection from the pool) ends by the one deadline, and the store then
raises `StoreBusyError` / `StoreUnavailableError` at once. A context variable carries it,
so it follows the call's task and the tasks it starts; an inner deadline never extends an
outer one. Outside any deadline each wait keeps its own limit.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("reset_mcp_store_deadline", default=None)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Store waits inside end at most `seconds` from now (or at an enclosing, earlier deadline)."""
    at = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(at if outer is None else min(outer, at))
    try:
        yield
    finally:
        _deadline.reset(token)


def wait_budget(limit: float) -> float:
    """Seconds a store wait may take now: `limit`, or less if the call's deadline comes first."""
    at = _deadline.get()
    if at is None:
        return limit
    return max(0.0, min(limit, at - time.monotonic()))


@contextmanager
def detached() -> Iterator[None]:
    """No deadline inside: for work a call hands off to outlive it (a delivery it submitted
    inherits the call's context, deadline included, but must not end with the call)."""
    token = _deadline.set(None)
    try:
        yield
    finally:
        _deadline.reset(token)
