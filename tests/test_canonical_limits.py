"""Limits, locks and risk count one inbox and one host once (issue 22, items 1-2), while
every email still goes to the address given; the store keys of schema 6 on SQLite and
PostgreSQL, and the upgrade from version 5."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from pg import fresh_schema_url, pg_database_fixture
from starlette.testclient import TestClient

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.errors import InvalidInputError
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.server.http.app import build_http_app
from reset_mcp.store import open_store
from reset_mcp.store import postgres as pg_store
from reset_mcp.store import sqlite as sqlite_store
from reset_mcp.store.schema import MIGRATIONS
from reset_mcp.vocab import Risk, SendStatus
from tests.conftest import CHROME_UA
from tests.test_admin import Overseer, make_settings

pg_url = pg_database_fixture()
NOW = datetime(2030, 5, 17, 12, 0, tzinfo=UTC)
# One inbox, as the attacker spelled it: tags, dots, the other Google domain.
ONE_INBOX = [
    *(f"alice+{n}@gmail.com" for n in range(15)),
    *("a" + "".join(f".{c}" if (n >> i) & 1 else c for i, c in enumerate("lice")) + "@gmail.com" for n in range(15)),
    *(f"alice+x{n}@googlemail.com" for n in range(15)),
]


def _inp(email: str, ip: str = "198.51.100.7", user_id: str = "u-1") -> ResetInput:
    return ResetInput(email, user_id, ip, CHROME_UA)


async def test_one_inbox_many_spellings_is_one_account(app: App, backend: MemoryBackend) -> None:
    assert len(set(ONE_INBOX)) == 45
    results = [await app.service.request_password_reset(_inp(email, ip=f"198.51.100.{i}")) for i, email in
               enumerate(ONE_INBOX)]  # fmt: skip
    sent = [r for r in results if r.status == SendStatus.SENT]
    assert len(sent) == app.settings.rate_limit_account_per_hour == 5
    assert all(r.status == SendStatus.RATE_LIMITED for r in results[5:])
    resets = [m for m in backend.sent if m.kind == "password_reset"]
    assert [m.to for m in resets] == ONE_INBOX[:5]  # each went to the address as given
    assert results[-1].risk == Risk.HIGH  # the burst is seen as one account's
    alerts = [m for m in backend.sent if m.kind == "security_alert"]
    assert len(alerts) == 1  # and alerted once, not once per spelling


async def test_the_separator_and_dotless_domains_are_settings(
    settings_factory: Callable[..., Any], clock: FakeClock
) -> None:
    settings = settings_factory(subaddress_separator="", dotless_domains="", rate_limit_account_per_hour=1)
    async with build_app(settings, clock=clock, backend=MemoryBackend()) as app:
        for email in ("alice+1@gmail.com", "alice+2@gmail.com", "a.lice@gmail.com"):
            assert (await app.service.request_password_reset(_inp(email))).status == SendStatus.SENT
        # googlemail.com is gmail.com whatever the list says: one namespace, two names.
        assert (await app.service.request_password_reset(_inp("alice@googlemail.com"))).status == SendStatus.SENT
        assert (await app.service.request_password_reset(_inp("alice@gmail.com"))).status == SendStatus.RATE_LIMITED


async def test_one_ipv6_network_is_one_client(settings_factory: Callable[..., Any], clock: FakeClock) -> None:
    settings = settings_factory(rate_limit_ip_per_hour=3)
    async with build_app(settings, clock=clock, backend=MemoryBackend()) as app:
        svc = app.service
        for n in range(3):
            inp = _inp(f"user{n}@example.com", ip=f"2001:db8:1:2::{n + 1:x}", user_id=f"u-{n}")
            assert (await svc.request_password_reset(inp)).status == SendStatus.SENT
        # Another address of the same /64 (another spelling too): limited.
        other = await svc.request_password_reset(_inp("z@example.com", ip="2001:DB8:1:2:ffff:0:0:1", user_id="u-z"))
        assert other.status == SendStatus.RATE_LIMITED and "IP address" in (other.reason or "")
        # The next /64 is another client.
        next_net = await svc.request_password_reset(_inp("y@example.com", ip="2001:db8:1:3::1", user_id="u-y"))
        assert next_net.status == SendStatus.SENT


async def test_an_ipv4_mapped_address_is_its_ipv4_address(
    settings_factory: Callable[..., Any], clock: FakeClock
) -> None:
    settings = settings_factory(rate_limit_ip_per_hour=2)
    async with build_app(settings, clock=clock, backend=MemoryBackend()) as app:
        svc = app.service
        assert (await svc.request_password_reset(_inp("a@example.com", "203.0.113.9", "u-a"))).status == "sent"
        assert (await svc.request_password_reset(_inp("b@example.com", "::ffff:203.0.113.9", "u-b"))).status == "sent"
        third = await svc.request_password_reset(_inp("c@example.com", "::ffff:cb00:7109", "u-c"))
        assert third.status == SendStatus.RATE_LIMITED


async def test_a_zone_id_is_refused_and_nothing_is_written(app: App) -> None:
    with pytest.raises(InvalidInputError, match="zone id"):
        await app.service.request_password_reset(_inp("alice@example.com", ip="fe80::1%eth0"))
    with pytest.raises(InvalidInputError, match="zone id"):
        await app.service.contacts.check_abuse(email="alice@example.com", user_id=None, ip="fe80::1%1")
    async with app.store.reading() as tx:
        assert await tx.list_events(limit=10) == []


async def test_risk_counts_networks_not_addresses(app: App) -> None:
    # Three addresses of one /64: one network, not "requests from 3 different IP addresses".
    for n in range(3):
        await app.service.request_password_reset(_inp("alice@example.com", ip=f"2001:db8:9:9::{n + 1}"))
    same_net = await app.service.contacts.check_abuse(email="alice@example.com", user_id=None, ip="2001:db8:9:9::77")
    assert same_net.risk == Risk.LOW and same_net.ip_attempts == 3
    assert not any("different IP" in r for r in same_net.reasons)
    for n in range(3):
        await app.service.request_password_reset(_inp("bob@example.com", ip=f"2001:db8:{n}::1", user_id="u-b"))
    three = await app.service.contacts.check_abuse(email="bob@example.com", user_id=None, ip=None)
    assert three.risk == Risk.ELEVATED and "requests from 3 different IP addresses" in three.reasons


async def test_the_policy_cap_counts_the_inbox(settings_factory: Callable[..., Any], tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[recipients]\nmax_per_hour = 2\n", encoding="utf-8")
    settings = settings_factory(policy_file=policy, rate_limit_account_per_hour=50)
    async with build_app(settings, clock=FakeClock(), backend=MemoryBackend()) as app:
        statuses = [
            (await app.service.request_password_reset(_inp(f"alice+{n}@example.com", ip=f"198.51.100.{n}"))).status
            for n in range(4)
        ]
    assert statuses == ["sent", "sent", "blocked", "blocked"]


async def test_contact_history_keeps_each_spelling(app: App) -> None:
    await app.service.request_password_reset(_inp("a.lice+shop@gmail.com"))
    await app.service.request_password_reset(_inp("alice@gmail.com", ip="198.51.100.8"))
    async with app.store.reading() as tx:
        events = await tx.list_events(mailbox="alice@gmail.com", event_types=("reset_requested",))
    assert sorted(e.email for e in events) == ["a.lice+shop@gmail.com", "alice@gmail.com"]
    assert {e.mailbox for e in events} == {"alice@gmail.com"}


# --------------------------------------------------------------------------- locks (PostgreSQL)


@pytest.fixture
async def two_apps(pg_url: str, settings_factory: Callable[..., Any]) -> AsyncIterator[tuple[App, App]]:
    url = fresh_schema_url(pg_url)
    async with AsyncExitStack() as stack:
        apps = []
        for _ in range(2):
            settings = settings_factory(database_url=url, db_pool_size=8)
            apps.append(await stack.enter_async_context(build_app(settings, backend=MemoryBackend())))
        yield apps[0], apps[1]


@pytest.mark.postgres
async def test_spellings_share_the_account_lock_across_instances(two_apps: tuple[App, App]) -> None:
    statuses: list[str] = []

    async def request(app: App, i: int) -> None:
        statuses.append((await app.service.request_password_reset(_inp(ONE_INBOX[i], f"198.51.100.{i}"))).status)

    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(request, two_apps[i % 2], i)
    assert statuses.count("sent") == 5, statuses
    assert statuses.count("rate_limited") == 7


# --------------------------------------------------------------------------- the upgrade


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_version_5_database_upgrades_its_events(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        module, url = sqlite_store, f"sqlite:///{tmp_path / 'v5.db'}"
    else:
        module, url = pg_store, fresh_schema_url(request.getfixturevalue("pg_url"))
    monkeypatch.setattr(module, "MIGRATIONS", MIGRATIONS[:5])
    old = await open_store(url)
    async with old.transaction() as tx:  # as version 5 wrote them
        for email, ip in [("alice@example.com", "203.0.113.9"), ("a.b+x@gmail.com", "2001:db8::1"), ("c@x.test", None)]:
            await tx._exec(  # type: ignore[attr-defined]
                "INSERT INTO events (email, user_id, event_type, ip, device, country, metadata, created_at) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (email, None, "reset_requested", ip, None, None, "{}", (NOW - timedelta(minutes=5)).timestamp()),
            )
    await old.aclose()
    monkeypatch.setattr(module, "MIGRATIONS", MIGRATIONS)
    store = await open_store(url)
    hour_ago = NOW - timedelta(hours=1)
    try:
        async with store.reading() as tx:
            # Old rows keyed as written: exact for IPv4 and an untagged address.
            assert await tx.count_events("reset_requested", hour_ago, mailbox="alice@example.com") == 1
            assert await tx.count_events("reset_requested", hour_ago, net="203.0.113.9") == 1
            assert await tx.count_events("reset_requested", hour_ago, mailbox="a.b+x@gmail.com") == 1
            assert await tx.count_events("reset_requested", hour_ago, net="2001:db8::1") == 1
            assert len(await tx.list_events(mailbox="c@x.test")) == 1
            indexes = await _index_names(tx, backend)
        assert {"events_mailbox", "events_net"} <= indexes
        assert not {"events_email", "events_ip"} & indexes
    finally:
        await store.aclose()


async def _index_names(tx: Any, backend: str) -> set[str]:
    if backend == "sqlite":
        rows = await tx._all("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
    else:
        rows = await tx._all("SELECT indexname AS name FROM pg_indexes WHERE tablename = 'events'")
    return {r["name"] for r in rows}


def test_admin_sign_in_failures_count_per_ipv6_network(tmp_path: Path) -> None:
    # The overseer's sign-in throttle keys on the host network too: stepping through the
    # addresses of one /64 does not buy more guesses.
    settings = make_settings(tmp_path)
    with TestClient(build_http_app(settings), base_url=f"http://127.0.0.1:{settings.http_port}") as client:

        def sign_in_from(address: str) -> int:
            client._transport.client = (address, 5000)  # type: ignore[attr-defined]  # the peer the app sees
            return Overseer("", client).sign_in("rmcp_abcdefgh_guess").status_code

        assert [sign_in_from(f"2001:db8:5:5::{n + 1:x}") for n in range(10)] == [401] * 10
        assert sign_in_from("2001:db8:5:5:ffff::2") == 429
        assert sign_in_from("2001:db8:5:6::1") == 401  # the next /64 is someone else
