"""An approval past its window is refused by `decide` itself (issue 22 item 13).

The expiry job ends overdue approvals a batch of 100 at a time (oldest first). With more
overdue than that, one could be approved before the job reached it. The desk checks the
window on every decision: the late approval is expired in that same transaction, the
caller gets a conflict that says so, and nothing is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings
from reset_mcp.deps import Caller
from reset_mcp.errors import ConflictError
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.memory import MemoryBackend
from tests.conftest import reset_args

OVERSEER = Caller("cli:overseer", frozenset({"approve"}))
HELD = 150  # more than the expiry job's batch of 100


@pytest.fixture
async def gated(
    settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> AsyncIterator[App]:
    # One caller holds all 150: the bound on a caller's pending approvals (50) and its hourly
    # budget of emails (60) raised.
    settings = settings_factory(
        oversight_mode="gated", rate_limit_ip_per_hour=10_000, max_pending_per_caller=1000, caller_sends_per_hour=10_000
    )
    async with build_app(settings, clock=clock, backend=backend) as app:
        yield app


async def hold(app: App, clock: FakeClock, n: int) -> list[str]:
    ids = []
    for i in range(n):
        out = await app.service.request_password_reset(
            ResetInput(**reset_args(email=f"user{i}@example.com", user_id=f"u-{i}"))
        )
        assert out.status == "pending_approval" and out.approval_id
        ids.append(out.approval_id)
        clock.advance(seconds=1)  # each expires a second after the one before
    return ids


@pytest.mark.parametrize("decide", ["approve", "reject"])
async def test_a_late_decision_is_refused_however_many_are_overdue(
    gated: App, clock: FakeClock, backend: MemoryBackend, decide: str
) -> None:
    ids = await hold(gated, clock, HELD)
    clock.advance(minutes=15)  # every window has ended; none has been expired yet
    desk = gated.service.approvals
    newest = ids[-1]  # the last the expiry job's oldest-first batches would reach
    with pytest.raises(ConflictError, match=f"approval {newest} expired: its window ended at"):
        if decide == "approve":
            await desk.approve(newest, OVERSEER, "too late")
        else:
            await desk.reject(newest, OVERSEER, "too late")
    view = await desk.get(newest)
    assert (view.status, view.decided_by) == ("expired", "system")
    status = await desk.send_status(view.request_id)
    assert status.status == "expired" and status.deliveries == []
    assert backend.sent == []
    async with gated.store.reading() as tx:
        assert await tx.get_token_for_send(view.request_id) is None
        audit = await tx.list_audit(limit=10_000)
    assert [e.action for e in audit if e.subject == view.request_id] == ["decision", "approval_expired"]
    # Deciding it again says so, as for any decided approval.
    with pytest.raises(ConflictError, match="already expired"):
        await desk.approve(newest, OVERSEER)


async def test_a_decision_inside_the_window_still_goes_through(
    gated: App, clock: FakeClock, backend: MemoryBackend
) -> None:
    [approval_id] = await hold(gated, clock, 1)
    clock.advance(minutes=14, seconds=58)  # hold() advanced one: a second of the window left
    decision = await gated.service.approvals.approve(approval_id, OVERSEER)
    assert decision.status == "approved" and [m.kind for m in backend.sent] == ["password_reset"]
    assert (await gated.service.approvals.get(approval_id)).expires_at == clock.now() + timedelta(seconds=1)
