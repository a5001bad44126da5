"""Throttling failed token checks and sign-ins, so a caller cannot guess its way through.

- `RedeemThrottle`: failed token checks (verify, consume). One app key serves every
  user's reset page, so failures are counted per (key, client network) and per token,
  never per key alone: a prober spread over ten addresses must not lock every user
  out. A client with no known address (stdio, an app that passes no IP) is one bucket
  per key with NIST SP 800-63B's ceiling of 100 failures. Past a global cap the
  throttle brakes: each client's budget shrinks and failed answers are delayed, but a
  client without failures is never refused.
- `ClientThrottle`: failures per client address in a sliding window (admin sign-in).
- `Quota`: at most N of anything per key in a sliding window (events an agent records).

The state is per process, which is enough here: a guess needs a valid 256-bit jti and
signature, and the caps bound the audit noise a misbehaving caller can make.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reset_mcp.canonical import ip_key
from reset_mcp.errors import InvalidInputError, TooManyFailuresError


def _retry(stamps: deque[datetime], limit: int, window: timedelta, now: datetime) -> int | None:
    """Seconds until one more failure fits under `limit`, or None when it fits now."""
    while stamps and stamps[0] <= now - window:
        stamps.popleft()
    if len(stamps) < limit:
        return None
    return max(1, math.ceil((stamps[-limit] + window - now).total_seconds()))


@dataclass(frozen=True, slots=True)
class RedeemLimits:
    client: int = 10  # failures per (key, client network) in `client_window`
    client_window: timedelta = timedelta(minutes=5)
    unknown_client: int = 100  # per key when the client's address is not known (NIST's cap)
    token: int = 10  # failures of one token string in `window`
    window: timedelta = timedelta(minutes=15)
    global_cap: int = 300  # failures in `client_window` across every key and client: brake
    braked_client: int = 3  # a client's budget while braking
    brake_delay: float = 1.0  # seconds each failed answer waits while braking


class RedeemThrottle:
    """Failed token checks per (key, client network), per token, and in total.

    `check` before a token is looked at (TooManyFailuresError with `retry_after`);
    `failed` after a failure, answering how long to delay the answer (0 unless braking);
    `succeeded` clears the (key, client) bucket: NIST counts consecutive failures.
    """

    def __init__(self, limits: RedeemLimits | None = None, *, max_keys: int = 10_000) -> None:
        self.limits = limits or RedeemLimits()
        self.max_keys = max_keys
        self._clients: dict[tuple[str, str | None], deque[datetime]] = {}
        self._tokens: dict[str, deque[datetime]] = {}
        self._all: deque[datetime] = deque()

    def braking(self, now: datetime) -> bool:
        lim = self.limits
        while self._all and self._all[0] <= now - lim.client_window:
            self._all.popleft()
        return len(self._all) >= lim.global_cap

    def _client_rule(self, client: str | None, now: datetime) -> tuple[int, timedelta]:
        lim = self.limits
        if client is None:
            return lim.unknown_client, lim.window
        return (lim.braked_client if self.braking(now) else lim.client), lim.client_window

    def check(self, key: str, client: str | None, token: str, now: datetime) -> None:
        """`client`: the client's network (`canonical.ip_key`), None when unknown."""
        limit, window = self._client_rule(client, now)
        waits = [
            _retry(self._clients.get((key, client), deque()), limit, window, now),
            _retry(self._tokens.get(_digest(token), deque()), self.limits.token, self.limits.window, now),
        ]
        wait = max((w for w in waits if w is not None), default=None)
        if wait is not None:
            raise TooManyFailuresError(wait)

    def failed(self, key: str, client: str | None, token: str, now: datetime) -> float:
        self._note(self._clients, (key, client), now)
        self._note(self._tokens, _digest(token), now)
        self._all.append(now)
        if len(self._all) > 4 * self.limits.global_cap:  # bounded: older stamps no longer matter
            self._all.popleft()
        return self.limits.brake_delay if self.braking(now) else 0.0

    def succeeded(self, key: str, client: str | None) -> None:
        self._clients.pop((key, client), None)

    def _note(self, table: dict[Any, deque[datetime]], name: Any, now: datetime) -> None:
        stamps = table.pop(name, None) or deque(maxlen=max(self.limits.unknown_client, self.limits.token) + 1)
        stamps.append(now)
        table[name] = stamps  # re-inserted: dict order is least recently failed first
        while len(table) > self.max_keys:
            del table[next(iter(table))]


class Quota:
    """At most `limit` uses per key in a sliding `window`; per process, bounded in keys."""

    def __init__(self, limit: int, window: timedelta, *, max_keys: int = 10_000) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._uses: dict[str, deque[datetime]] = {}

    def take(self, key: str, now: datetime) -> int | None:
        """Count one use and answer None, or answer the seconds until one fits (nothing counted)."""
        stamps = self._uses.pop(key, None) or deque(maxlen=self.limit)
        wait = _retry(stamps, self.limit, self.window, now)
        if wait is None:
            stamps.append(now)
        self._uses[key] = stamps
        while len(self._uses) > self.max_keys:
            del self._uses[next(iter(self._uses))]
        return wait


def redeem_client(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, peer: str | None) -> str | None:
    """Whom failed checks are counted for: the end user's network when the app passed
    their IP, else the connection's (`Caller.peer`), else no one in particular (None:
    one bucket per key)."""
    if ip is not None:
        return ip_key(ip)
    if peer:
        try:
            return ip_key(peer)
        except InvalidInputError:
            return None
    return None


def _digest(token: str) -> str:
    # The token itself is never kept, even in memory: a hash names it.
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]


class ClientThrottle:
    """At most `limit` failed verifications per client IP in a sliding `window` (seconds).

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
