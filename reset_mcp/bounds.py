"""How long one call (an MCP tool, a REST request) may take, whatever the parts around it do.

A call waits for three things: the database (a pooled connection, another process's
SQLite write lock), its email's delivery, and its own statements. The first two have
their own limits, and the third has none of its own, so a call is given:

- one deadline for all of its store waits together (`store.deadline`), the database
  wait (RESET_MCP_DB_POOL_TIMEOUT_SECONDS, 5 s), at which the store raises
  `StoreBusyError` / `StoreUnavailableError`;
- the send wait (RESET_MCP_SEND_WAIT_SECONDS, 3 s) for its email, after which it answers
  `queued` and the delivery goes on in the dispatcher's task group (`Deps.deliver`); a
  call that spent long on the database waits less (`answer_by`), so that once its work
  is committed it still answers `queued` rather than running into the bound;
- a hard bound on the whole, those two plus `SLACK_SECONDS`: a database that accepted a
  statement and never answered it (a hung server, a lock held by a stuck session) ends
  the call there with `StoreTimeoutError`, the documented "database unavailable" answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import anyio

from reset_mcp.config import Settings
from reset_mcp.errors import StoreTimeoutError
from reset_mcp.store.deadline import deadline

SLACK_SECONDS = 2.0  # the call's own work besides its waits (CPU, statements answered in time)
_answer_by: ContextVar[float | None] = ContextVar("reset_mcp_answer_by", default=None)


def answer_by() -> float | None:
    """When the current call must stop waiting for its emails (anyio's clock), if bounded."""
    return _answer_by.get()


@dataclass(frozen=True, slots=True)
class CallBounds:
    store_seconds: float = 5.0
    send_wait: float = 3.0

    @classmethod
    def of(cls, settings: Settings) -> CallBounds:
        return cls(settings.db_pool_timeout_seconds, settings.send_wait_seconds)

    @property
    def total(self) -> float:
        """The most a call takes: the documented bound (README)."""
        return self.store_seconds + self.send_wait + SLACK_SECONDS

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside: store waits share one deadline, and the whole ends by `total`."""
        token = _answer_by.set(anyio.current_time() + self.total - SLACK_SECONDS / 2)
        try:
            with deadline(self.store_seconds), anyio.move_on_after(self.total) as bound:
                yield
        finally:
            _answer_by.reset(token)
        if bound.cancelled_caught:
            raise StoreTimeoutError(f"the database did not answer within this call's {self.total:g}s")
