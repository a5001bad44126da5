"""A wake-up at a set moment, however the event loop spent the wait.

An event loop's own timer is late by an amount that depends on what else the loop did
meanwhile. The stdlib loop sleeps in `epoll_wait`, whose timeout is whole milliseconds
rounded up from the moment that poll began: a timer due at `when` fires `ceil(r) - r` ms
late, `r` being the time left (in ms) when the loop's last poll before `when` began (one
more millisecond for some `r`: `selectors` rounds up to milliseconds, then `epoll.poll`
rounds `k * 1e-3` up once more, 0.009000000000000001 s to 10 ms). Which poll is the last
one depends on the other tasks: one that ran during the wait (a known account's delivery)
moves it, and the lateness with it. uvloop (libuv) keeps its time in whole milliseconds,
read at the start of each loop turn, so it has its own share of the same. A directory-mode
answer timed by the loop alone thus came out shaped differently for a known account than
for an unknown one.

`sleep_until` sleeps with the loop until `LOOP_MARGIN` before the moment, then waits out
the rest on one thread that sleeps on the monotonic clock (a futex with a timeout: no
spinning, precise to the kernel's timer slack, 50 us) and wakes the loop at once
(`call_soon_threadsafe` writes to the loop's wake-up pipe): the wake no longer depends on
the phase of the loop's polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import time

import anyio
import sniffio

# The loop's timer is up to 2 ms late on an idle loop (see above), later on a busy one: the
# loop wakes this much before the moment, and the alarm's thread waits the last stretch.
LOOP_MARGIN = 0.005

_Due = tuple[float, int, asyncio.AbstractEventLoop, asyncio.Future[None]]


class Alarm:
    """One thread that wakes waiting tasks at their moments (`time.monotonic()`), for every
    event loop of the process; it starts at the first wait and lives as long as the process."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[_Due] = []  # a heap: the soonest first
        self._order = itertools.count()  # ties in time wake in the order they came
        self._thread: threading.Thread | None = None

    async def wait_until(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()
        with self._cond:
            heapq.heappush(self._due, (when, next(self._order), loop, woken))
            if self._thread is None or not self._thread.is_alive():  # none yet, or a forked child
                self._thread = threading.Thread(target=self._run, name="reset-mcp alarm", daemon=True)
                self._thread.start()
            elif self._due[0][3] is woken:
                self._cond.notify()  # sooner than the moment the thread waits for
        await woken  # cancelled: the future is, and the thread's wake finds it done

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                while not self._due or self._due[0][0] > now:
                    self._cond.wait(self._due[0][0] - now if self._due else None)
                    now = time.monotonic()
                due: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
                while self._due and self._due[0][0] <= now:
                    _, _, loop, woken = heapq.heappop(self._due)
                    due.setdefault(loop, []).append(woken)
            for loop, woken_ones in due.items():  # one wake-up of each loop for all its tasks
                with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                    loop.call_soon_threadsafe(_wake, woken_ones)


def _wake(woken_ones: list[asyncio.Future[None]]) -> None:
    for woken in woken_ones:
        if not woken.done():  # cancelled meanwhile
            woken.set_result(None)


ALARM = Alarm()


async def sleep_until(when: float) -> None:
    """Return at `when` (`time.monotonic()`): on an idle loop ~0.1 ms after it, whatever
    else the loop ran during the wait; later only when the loop is busy at that moment."""
    if (early := when - LOOP_MARGIN - time.monotonic()) > 0:
        await anyio.sleep(early)
    if time.monotonic() >= when:
        return
    if sniffio.current_async_library() == "asyncio":  # the server's loop, uvloop's included
        await ALARM.wait_until(when)
    else:  # another anyio backend: its own timer, as precise as that is
        await anyio.sleep(max(0.0, when - time.monotonic()))
