"""Retries and budgets (issue 20, part 5): idempotency keys on the four tools that act, and
the per-caller budget across all addresses. Racing duplicates on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from mcp import Client

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings
from reset_mcp.deps import Caller
from reset_mcp.errors import ConflictError
from reset_mcp.flows.request import ResetInput
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.vocab import Scope
from tests.conftest import client_for, reset_args
from tests.pg import fresh_schema_url, pg_database_fixture

pg_url = pg_database_fixture()
AGENT = Caller("key:agent", frozenset({Scope.SEND}))


async def call(client: Client, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, args)
    assert not result.is_error, result.content
    return result.structured_content  # type: ignore[return-value]


async def event_count(app: App, event_type: str) -> int:
    async with app.store.reading() as tx:
        return len([e for e in await tx.list_events(limit=10_000) if e.event_type == event_type])


async def test_a_retried_reset_gets_the_first_answer_sends_nothing_and_counts_once(
    settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    settings = settings_factory(rate_limit_account_per_hour=2)
    async with build_app(settings, clock=clock, backend=backend) as app, client_for(app) as client:
        first = await call(client, "request_password_reset", reset_args(idempotency_key="retry-1"))
        clock.advance(seconds=30)
        again = await call(client, "request_password_reset", reset_args(idempotency_key="retry-1"))
        assert again == first and first["status"] == "sent"
        assert len(backend.sent) == 1 and await event_count(app, "reset_requested") == 1
        # Counted once: one more request fits under a limit of two.
        assert (await call(client, "request_password_reset", reset_args(idempotency_key="retry-2")))["status"] == "sent"
        limited = await call(client, "request_password_reset", reset_args(idempotency_key="retry-3"))
        assert limited["status"] == "rate_limited"
        # The same key with other arguments is refused, and does nothing.
        other = await client.call_tool("request_password_reset", reset_args(idempotency_key="retry-1", name="Bo"))
        assert other.is_error and "idempotency_key was already used with other arguments" in other.content[0].text  # type: ignore[union-attr]
        # A rate-limited answer did nothing, so it is not kept: after the wait the key works.
        clock.advance(seconds=limited["retry_after"])
        assert (await call(client, "request_password_reset", reset_args(idempotency_key="retry-3")))["status"] == "sent"
        # A key lives 24 hours; after that, it is a new request.
        clock.advance(hours=25)
        later = await call(client, "request_password_reset", reset_args(idempotency_key="retry-1"))
        assert later["status"] == "sent" and later["request_id"] != first["request_id"]
        assert len(backend.sent) == 4


async def test_keys_are_per_caller(app: App, backend: MemoryBackend) -> None:
    other = Caller("key:other", frozenset({Scope.SEND}))
    a = await app.service.request_password_reset(ResetInput(**reset_args()), AGENT, idempotency_key="same")
    b = await app.service.request_password_reset(ResetInput(**reset_args()), other, idempotency_key="same")
    assert a.request_id != b.request_id and len(backend.sent) == 2


async def test_the_other_three_tools_do_their_work_once_per_key(
    client: Client, app: App, backend: MemoryBackend
) -> None:
    alert = {"email": "alice@example.com", "reason": "account_locked", "idempotency_key": "a1"}
    assert await call(client, "send_security_alert", alert) == await call(client, "send_security_alert", alert)
    assert [m.kind for m in backend.sent] == ["security_alert"]
    event = {
        "email": "alice@example.com",
        "event_type": "support_ticket",
        "metadata": {"n": 1},
        "idempotency_key": "e1",
    }
    assert await call(client, "record_contact_event", event) == await call(client, "record_contact_event", event)
    assert await event_count(app, "support_ticket") == 1
    await call(client, "request_password_reset", reset_args())
    revoke = {"email": "alice@example.com", "reason": "support call", "idempotency_key": "r1"}
    first = await call(client, "revoke_reset_tokens", revoke)
    assert first == {"revoked": 1} and await call(client, "revoke_reset_tokens", revoke) == first
    async with app.store.reading() as tx:
        assert [e.action for e in await tx.list_audit(limit=1000)].count("tokens_revoked") == 1
    changed = await client.call_tool("send_security_alert", {**alert, "reason": "other"})
    assert changed.is_error and "other arguments" in changed.content[0].text  # type: ignore[union-attr]
    too_long = await client.call_tool("revoke_reset_tokens", {**revoke, "idempotency_key": "k" * 129})
    assert too_long.is_error


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_racing_duplicates_send_once(
    store: str, pg_url: str, settings_factory: Callable[..., Settings], clock: FakeClock
) -> None:
    over: dict[str, Any] = {"database_url": fresh_schema_url(pg_url)} if store == "postgres" else {}
    backend = MemoryBackend()
    async with build_app(settings_factory(**over), clock=clock, backend=backend) as app:
        answers: list[Any] = []

        async def one() -> None:
            inp = ResetInput(**reset_args())
            answers.append(await app.service.request_password_reset(inp, AGENT, idempotency_key="race"))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
        assert len(answers) == 20 and len({a.request_id for a in answers}) == 1
        assert len(backend.sent) == 1 and await event_count(app, "reset_requested") == 1


# --------------------------------------------------------------------------- the per-caller budget


async def test_a_caller_may_ask_for_so_many_emails_an_hour_across_all_addresses(
    settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    async with build_app(settings_factory(caller_sends_per_hour=3), clock=clock, backend=backend) as app:
        svc = app.service
        for n in range(2):
            inp = ResetInput(**reset_args(email=f"user{n}@example.com", user_id=f"u-{n}"))
            assert (await svc.request_password_reset(inp, AGENT)).status == "sent"
        alert = await svc.contacts.send_security_alert(
            email="x@example.com", user_id=None, reason="other", caller=AGENT
        )
        assert alert.status == "sent"
        over = await svc.request_password_reset(ResetInput(**reset_args(email="user9@example.com")), AGENT)
        assert over.status == "rate_limited" and over.reason == "more than 3 emails per hour for this caller"
        assert over.retry_after == 3601
        refused = await svc.contacts.send_security_alert(
            email="y@example.com", user_id=None, reason="other", caller=AGENT
        )
        assert refused.status == "rate_limited" and refused.retry_after == 3601
        other = Caller("key:other", frozenset({Scope.SEND}))  # another caller has its own budget
        assert (await svc.request_password_reset(ResetInput(**reset_args()), other)).status == "sent"
        assert len(backend.sent) == 4
        clock.advance(hours=1, seconds=1)
        assert (
            await svc.request_password_reset(ResetInput(**reset_args(email="user9@example.com")), AGENT)
        ).status == "sent"


async def test_the_key_and_the_idempotency_error_are_plain(app: App) -> None:
    inp = ResetInput(**reset_args())
    await app.service.request_password_reset(inp, AGENT, idempotency_key="k")
    with pytest.raises(ConflictError, match="already used with other arguments"):
        await app.service.request_password_reset(ResetInput(**reset_args(ip="81.2.69.160")), AGENT, idempotency_key="k")
