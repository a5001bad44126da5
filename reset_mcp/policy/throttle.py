"""Throttling failed token checks, so a caller cannot guess its way through tokens.

NIST SP 800-63B caps consecutive failed attempts at 100. Each caller (the stdio user, an
API key) gets `limit` failures in a row; after that its checks are refused until
`cooldown` has passed since the last failure. A success resets the count. The state is
per process, which is enough here: a guess needs a valid 256-bit jti and signature, and
the cap bounds the audit noise a misbehaving caller can make.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from reset_mcp.errors import ResetMCPError


class TooManyFailuresError(ResetMCPError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed token checks; try again in {retry_after} seconds")
        self.retry_after = retry_after


@dataclass(slots=True)
class _Count:
    failures: int
    last: datetime


class FailureThrottle:
    def __init__(self, limit: int = 100, cooldown: timedelta = timedelta(minutes=15), max_keys: int = 10_000) -> None:
        self.limit = limit
        self.cooldown = cooldown
        self.max_keys = max_keys
        self._counts: dict[str, _Count] = {}

    def check(self, key: str, now: datetime) -> None:
        count = self._counts.get(key)
        if count is None or count.failures < self.limit:
            return
        wait = count.last + self.cooldown - now
        if wait.total_seconds() <= 0:
            del self._counts[key]
            return
        raise TooManyFailuresError(int(wait.total_seconds()) + 1)

    def failed(self, key: str, now: datetime) -> None:
        count = self._counts.get(key)
        if count is None:
            if len(self._counts) >= self.max_keys:  # bounded memory: forget the oldest entry
                self._counts.pop(next(iter(self._counts)))
            self._counts[key] = _Count(1, now)
        else:
            count.failures += 1
            count.last = now

    def succeeded(self, key: str) -> None:
        self._counts.pop(key, None)
