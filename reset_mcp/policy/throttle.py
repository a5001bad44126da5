"""Throttling failed token checks and sign-ins, so a caller cannot guess its way through.

- `FailureThrottle`: NIST SP 800-63B caps consecutive failed attempts at 100. Each
  caller (the stdio user, an API key) gets `limit` failures in a row; after that its
  checks are refused until `cooldown` has passed since the last failure. A success
  resets the count.
- `ClientThrottle`: failures per client address in a sliding window, in front of the
  per-caller cap (REST verification, admin sign-in).

The state is per process, which is enough here: a guess needs a valid 256-bit jti and
signature, and the caps bound the audit noise a misbehaving caller can make.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from reset_mcp.errors import TooManyFailuresError


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


class ClientThrottle:
    """At most `limit` failed verifications per client IP in a sliding `window` (seconds).

    This sits in front of the service's own per-caller cap (`reset_mcp.policy.throttle`, 100 failures
    in a row per API key, NIST's ceiling): one prober behind the app's key is slowed long
    before it can lock the whole app out.

    In memory, per process: behind a load balancer each instance counts on its own, so
    the effective limit is `limit x instances`, still far under NIST SP 800-63B's cap of
    100 consecutive failures. Tracking is bounded (`max_clients`, oldest dropped first).
    """

    def __init__(
        self,
        limit: int = 10,
        window: float = 300.0,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.max_clients, self.clock = limit, window, max_clients, clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        now = self.clock()
        stamps = self._failures.get(client, deque())
        while stamps and stamps[0] <= now - self.window:
            stamps.popleft()
        return stamps

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None when it is under the limit."""
        stamps = self._recent(client)
        if len(stamps) < self.limit:
            return None
        return max(1, math.ceil(stamps[-self.limit] + self.window - self.clock()))

    def failed(self, client: str) -> None:
        stamps = self._recent(client)
        stamps.append(self.clock())
        self._failures.pop(client, None)
        self._failures[client] = stamps  # re-inserted: dict order is least recently failed first
        while len(self._failures) > self.max_clients:
            del self._failures[next(iter(self._failures))]
