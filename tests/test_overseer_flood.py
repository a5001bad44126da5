"""One agent cannot flood the overseer (issue 22, item 4): notices obey the policy's
hourly cap and the rest go out as one digest an hour; a caller's pending approvals are
bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from pg import fresh_schema_url, pg_database_fixture

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.deps import Caller
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.vocab import Scope, SendStatus
from tests.conftest import CHROME_UA

OVERSEER = "overseer@acme.test"
AGENT = Caller("key:agent01", frozenset({Scope.SEND}))


def _inp(n: int) -> ResetInput:
    return ResetInput(f"user{n}@example.com", f"u-{n}", f"198.51.{n // 200}.{n % 200 + 1}", CHROME_UA)


@pytest.fixture
async def gated(
    settings_factory: Callable[..., Any], tmp_path: Path, clock: FakeClock, backend: MemoryBackend
) -> AsyncIterator[App]:
    policy = tmp_path / "policy.toml"
    policy.write_text('mode = "gated"\n[recipients]\nmax_per_hour = 2\n', encoding="utf-8")
    settings = settings_factory(policy_file=policy, oversight_email=OVERSEER, max_pending_per_caller=1000)
    async with build_app(settings, clock=clock, backend=backend) as app:
        yield app


def _to_overseer(backend: MemoryBackend, kind: str) -> list[Any]:
    return [m for m in backend.sent if m.to == OVERSEER and m.kind == kind]


async def test_held_requests_past_the_cap_go_into_one_digest_an_hour(
    gated: App, backend: MemoryBackend, clock: FakeClock
) -> None:
    held = [await gated.service.request_password_reset(_inp(n), AGENT) for n in range(26)]
    assert all(r.status == SendStatus.PENDING_APPROVAL for r in held)
    assert len(_to_overseer(backend, "oversight_notice")) == 2  # the cap, not 26

    await gated.jobs.run_once()
    [digest] = _to_overseer(backend, "oversight_digest")
    assert "Emails in this digest: 24" in digest.text
    for r in held[2:]:
        assert r.approval_id and r.approval_id in digest.text  # every held-back one is listed...
    for r in held[:2]:
        assert r.approval_id and r.approval_id not in digest.text  # ...and only those
    assert "token=" not in digest.text and "user25@example.com" in digest.text

    # More within the hour: held back, and no second digest until the hour is over.
    later = [await gated.service.request_password_reset(_inp(n), AGENT) for n in range(26, 30)]
    clock.advance(minutes=30)
    await gated.jobs.run_once()
    assert len(_to_overseer(backend, "oversight_digest")) == 1
    assert len(_to_overseer(backend, "oversight_notice")) == 2
    clock.advance(minutes=31)
    await gated.jobs.run_once()
    second = _to_overseer(backend, "oversight_digest")[1]
    assert "Emails in this digest: 4" in second.text
    assert all(r.approval_id and r.approval_id in second.text for r in later)
    await gated.jobs.run_once()
    assert len(_to_overseer(backend, "oversight_digest")) == 2  # nothing left: nothing sent


async def test_a_fresh_hour_gets_notices_again(gated: App, backend: MemoryBackend, clock: FakeClock) -> None:
    for n in range(3):
        await gated.service.request_password_reset(_inp(n), AGENT)
    clock.advance(minutes=61)
    await gated.service.request_password_reset(_inp(3), AGENT)
    assert len(_to_overseer(backend, "oversight_notice")) == 3


async def test_monitored_notices_obey_the_cap_too(
    settings_factory: Callable[..., Any], tmp_path: Path, clock: FakeClock
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('mode = "monitored"\n[recipients]\nmax_per_hour = 3\n', encoding="utf-8")
    backend = MemoryBackend()
    settings = settings_factory(policy_file=policy, oversight_email=OVERSEER)
    async with build_app(settings, clock=clock, backend=backend) as app:
        sent = [await app.service.request_password_reset(_inp(n), AGENT) for n in range(10)]
        assert all(r.status == SendStatus.SENT for r in sent)  # the resets themselves go out
        assert len(_to_overseer(backend, "oversight_notice")) == 3
        await app.jobs.run_once()
    [digest] = _to_overseer(backend, "oversight_digest")
    assert "Emails in this digest: 7" in digest.text and "sent (monitored)" in digest.text


async def test_pending_approvals_are_bounded_per_caller(
    settings_factory: Callable[..., Any], tmp_path: Path, clock: FakeClock
) -> None:
    settings = settings_factory(oversight_mode="gated", max_pending_per_caller=3)
    async with build_app(settings, clock=clock, backend=MemoryBackend()) as app:
        statuses = [(await app.service.request_password_reset(_inp(n), AGENT)).status for n in range(4)]
        assert statuses == ["pending_approval"] * 3 + ["blocked"]
        refused = await app.service.request_password_reset(_inp(9), AGENT)
        assert refused.status == SendStatus.BLOCKED and "already has 3 emails waiting" in (refused.reason or "")
        other = Caller("key:agent02", frozenset({Scope.SEND}))
        assert (await app.service.request_password_reset(_inp(5), other)).status == "pending_approval"
        # Deciding one makes room again.
        pending = await app.service.approvals.list_pending(caller=AGENT)
        await app.service.approvals.reject(pending.pending[0].id, Caller("cli:ann", frozenset({Scope.APPROVE})), "no")
        assert (await app.service.request_password_reset(_inp(6), AGENT)).status == "pending_approval"
        async with app.store.reading() as tx:
            audit = await tx.list_audit(newest=True, limit=50)
    blocked = [e for e in audit if e.action == "decision" and e.detail.get("rule") == "max_pending_per_caller"]
    assert len(blocked) == 2 and all(e.actor == "key:agent01" for e in blocked)


pg_url = pg_database_fixture()


@pytest.mark.postgres
async def test_the_notice_cap_holds_across_instances(
    pg_url: str, settings_factory: Callable[..., Any], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('mode = "gated"\n[recipients]\nmax_per_hour = 2\n', encoding="utf-8")
    url = fresh_schema_url(pg_url)
    backends = [MemoryBackend(), MemoryBackend()]
    async with AsyncExitStack() as stack:
        apps = [
            await stack.enter_async_context(
                build_app(
                    settings_factory(database_url=url, policy_file=policy, oversight_email=OVERSEER, db_pool_size=8),
                    backend=backend,
                )
            )
            for backend in backends
        ]

        async def request(n: int) -> None:
            await apps[n % 2].service.request_password_reset(_inp(n), AGENT)

        async with anyio.create_task_group() as tg:
            for n in range(16):
                tg.start_soon(request, n)
        await apps[0].jobs.run_once()
        await apps[1].jobs.run_once()
    notices = sum(len(_to_overseer(b, "oversight_notice")) for b in backends)
    digests = [m for b in backends for m in _to_overseer(b, "oversight_digest")]
    assert notices == 2 and len(digests) == 1 and "Emails in this digest: 14" in digests[0].text
