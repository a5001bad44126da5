"""`alarm.sleep_until`: the wake-up of a directory-mode answer (`answer_in_step`).

The loop's own timer wakes `ceil(r) - r` ms late on the stdlib loop, `r` the time left
when the loop's last poll before the moment began (epoll's whole milliseconds): another
task that finishes its work 10.2 ms before the moment made the wait 0.7 ms later than
one that finishes 10.9 ms before, every time (on uvloop 0.27 ms sooner). That is how a
known account's delivery shaped its answer's time. `sleep_until` must not care.
"""

from __future__ import annotations

import statistics
import time

import anyio
import pytest

from reset_mcp.alarm import LOOP_MARGIN, sleep_until

# uvicorn and `serve` run uvloop (a dependency): the alarm must wake that loop as well.
LOOPS = [pytest.param("asyncio", id="asyncio"), pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")]


async def work_until(when: float) -> None:
    """Another task's work that ends at `when` (it spins its last 3 ms to end exactly then)."""
    await anyio.sleep(max(0.0, when - 0.003 - time.monotonic()))
    while time.monotonic() < when:
        pass


async def lateness(work_ends_before: float) -> float:
    """How late `sleep_until` returns, in ms, when other work ends that long before the moment."""
    moment = time.monotonic() + 0.03
    async with anyio.create_task_group() as tg:
        tg.start_soon(work_until, moment - work_ends_before)
        await sleep_until(moment)
        woke = time.monotonic()
    return (woke - moment) * 1000


@pytest.mark.parametrize("anyio_backend", LOOPS)
async def test_the_wake_does_not_depend_on_when_other_work_ended() -> None:
    early, late = [], []
    for _ in range(40):  # interleaved, so a busy machine weighs on both alike
        early.append(await lateness(0.0102))
        late.append(await lateness(0.0109))
    gap = statistics.median(early) - statistics.median(late)
    # The loop's timer alone: 0.7 ms on the stdlib loop, 0.27 ms on uvloop. The alarm: < 0.01.
    assert abs(gap) < 0.2, (gap, statistics.median(early), statistics.median(late))


@pytest.mark.parametrize("anyio_backend", LOOPS)
async def test_many_waits_wake_at_their_moments_never_before() -> None:
    woke: list[tuple[float, float]] = []

    async def wait(moment: float) -> None:
        await sleep_until(moment)
        woke.append((moment, time.monotonic()))

    start = time.monotonic() + 0.01
    async with anyio.create_task_group() as tg:
        for n in range(500):
            tg.start_soon(wait, start + (n % 50) * 0.001 + (n // 50) * 0.0001)  # ties too
    assert len(woke) == 500
    assert all(at >= moment for moment, at in woke)


@pytest.mark.parametrize("anyio_backend", LOOPS)
async def test_a_cancelled_wait_ends_at_once_and_the_others_still_wake() -> None:
    woke: list[float] = []

    async def wait(moment: float) -> None:
        await sleep_until(moment)
        woke.append(moment)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait, time.monotonic() + LOOP_MARGIN / 2)  # straight to the alarm's thread
        await anyio.sleep(0)  # it waits there now
        tg.cancel_scope.cancel()
    started = time.monotonic()
    with anyio.move_on_after(0.01):  # in the loop's stretch
        await sleep_until(started + 60)
    assert time.monotonic() - started < 1
    async with anyio.create_task_group() as tg:
        tg.start_soon(wait, time.monotonic() + 0.005)
        tg.start_soon(wait, time.monotonic() + 0.001)
    assert len(woke) == 2
    await sleep_until(time.monotonic() - 1)  # a moment gone: at once
