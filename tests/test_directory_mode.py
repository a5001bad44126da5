"""With an account directory (issue 20, part 1): the agent names an account, the app's directory
names the recipient; an unknown account answers alike, in shape and in time.

Real parts: the signed HTTP directory on a loopback port (tests/directory_endpoint.py) and
a real PostgreSQL table read by the SQL directory; real MCP clients in process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest
from mcp import Client

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings, load_settings
from reset_mcp.deps import Caller
from reset_mcp.errors import ConfigError, NotFoundError
from reset_mcp.flows.account_reset import AccountInput
from reset_mcp.mail.memory import MemoryBackend
from tests.conftest import CHROME_UA, SECRET, client_for, reset_args
from tests.directory_endpoint import SECRET as DIRECTORY_SECRET
from tests.directory_endpoint import Endpoint, Reply, directory_endpoint
from tests.pg import fresh_schema_url, pg_database_fixture

pg_url = pg_database_fixture()
ALICE = {"user_id": "u-1", "email": "Alice@Example.com", "name": "Alice Liddell", "locale": "de"}
ASK = {"ip": "81.2.69.160", "user_agent": CHROME_UA}
ANSWER_KEYS = {"request_id", "status", "retry_after", "reason"}
AGENT = Caller("key:agent", frozenset({"send"}))


@pytest.fixture
def endpoint() -> Any:
    with directory_endpoint() as ep:
        ep.accounts["alice@example.com"] = ALICE
        ep.accounts["u-1"] = ALICE
        yield ep


def directory_settings(settings_factory: Callable[..., Settings], ep: Endpoint, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "directory_url": ep.url, "directory_secret": DIRECTORY_SECRET, "directory_answer_step_ms": 0,
    }  # fmt: skip
    return settings_factory(**{**base, **over})


@asynccontextmanager
async def running(settings: Settings, clock: FakeClock, backend: MemoryBackend) -> AsyncIterator[tuple[App, Client]]:
    async with build_app(settings, clock=clock, backend=backend) as app, client_for(app) as client:
        yield app, client


async def ask(client: Client, account: str, **over: Any) -> dict[str, Any]:
    result = await client.call_tool("request_password_reset", {"account": account, **ASK, **over})
    assert not result.is_error, result.content
    return result.structured_content  # type: ignore[return-value]


async def rows(app: App) -> dict[str, int]:
    async with app.store.reading() as tx:
        return {
            "sends": len(await tx.list_sends(None, 10_000)),
            "outbox": len(await tx.list_outbox(None, 10_000)),
            "audit": len(await tx.list_audit(limit=100_000)),
        }


async def settled(app: App) -> None:
    """Deliveries run beside the answer: let them land."""
    await app.dispatcher.wait_idle(5)
    await anyio.sleep(0)


# --------------------------------------------------------------------------- the recipient


async def test_the_recipient_user_id_and_name_come_from_the_directory_only(
    endpoint: Endpoint, settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    async with running(directory_settings(settings_factory, endpoint), clock, backend) as (app, client):
        schema = {t.name: t for t in (await client.list_tools()).tools}["request_password_reset"].input_schema
        assert set(schema["properties"]) == {"account", "ip", "user_agent", "locale", "timezone", "idempotency_key"}
        assert schema["required"] == ["account", "ip", "user_agent"]
        # An agent that still names a recipient, a user id or a name is not heard: only the account.
        hijack = {"email": "mallory@evil.example", "user_id": "u-666", "name": "Visit evil.example"}
        out = await ask(client, "u-1", locale="fr", **hijack)
        assert set(out) == ANSWER_KEYS and out["status"] == "accepted"
        await settled(app)
        [mail] = backend.sent
        assert mail.to == "alice@example.com" and "Hallo Alice Liddell" in mail.text  # the directory's locale wins
        async with app.store.reading() as tx:
            send = await tx.get_send(out["request_id"])
        assert send is not None and (send.recipient, send.user_id) == ("alice@example.com", "u-1")
        [seen] = endpoint.seen
        assert seen.account == "u-1" and seen.signature_ok


async def test_an_unknown_account_answers_alike_sends_nothing_and_is_audited(
    endpoint: Endpoint, settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    async with running(directory_settings(settings_factory, endpoint), clock, backend) as (app, client):
        known = await ask(client, "alice@example.com")
        before = await rows(app)
        unknown = await ask(client, "mallory@example.com")
        assert set(unknown) == set(known) == ANSWER_KEYS
        assert {k: v for k, v in unknown.items() if k != "request_id"} == {
            k: v for k, v in known.items() if k != "request_id"
        }
        assert unknown["request_id"].startswith("req_") and len(unknown["request_id"]) == len(known["request_id"])
        await settled(app)
        assert [m.to for m in backend.sent] == ["alice@example.com"]
        after = await rows(app)
        assert (after["sends"], after["outbox"]) == (before["sends"], before["outbox"])  # nothing to send
        async with app.store.reading() as tx:
            [entry] = [e for e in await tx.list_audit(limit=1000) if e.action == "unknown_account"]
        assert entry.subject == unknown["request_id"] and entry.detail["account"] == "mallory@example.com"
        # What an agent's key can look up about either of its requests reads the same: nothing.
        # (The in-process client is the local user, who sees everything: asked as a key here.)
        desk = app.service.approvals
        for account in ("alice@example.com", "mallory@example.com"):
            mine = (await app.service.request_reset_for_account(AccountInput(account, **ASK), AGENT)).answer
            with pytest.raises(NotFoundError) as caught:
                await desk.agent_send_status(mine.request_id, AGENT)
            assert str(caught.value) == f"no request {mine.request_id!r}"
        pending = await desk.agent_pending(caller=AGENT)
        assert (pending.count, pending.pending) == (0, [])


async def test_limits_are_counted_under_the_account_as_named_alike_for_known_and_unknown(
    endpoint: Endpoint, settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    settings = directory_settings(settings_factory, endpoint, rate_limit_account_per_hour=2)
    async with running(settings, clock, backend) as (app, client):
        answers = {account: [await ask(client, account) for _ in range(3)] for account in ("u-1", "nobody@example.com")}
        for account, (first, second, third) in answers.items():
            assert (first["status"], second["status"]) == ("accepted", "accepted"), account
            assert third["status"] == "rate_limited" and third["retry_after"] == 3601, account
            assert third["reason"] == "more than 2 reset requests per hour for this account"
        assert len(endpoint.seen) == 4  # a limited request asks the directory nothing
        # The mailbox's own limit holds across the names of one account, silently: the agent
        # hears `accepted`, the owner gets no more mail, the overseer sees it limited.
        mailbox = await ask(client, "alice@example.com")
        assert mailbox["status"] == "accepted"
        await settled(app)
        assert len(backend.sent) == 2
        async with app.store.reading() as tx:
            send = await tx.get_send(mailbox["request_id"])
        assert send is not None and send.status == "rate_limited"


async def test_check_abuse_get_contact_and_revoke_tell_nothing_about_existence(
    endpoint: Endpoint, settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    async with running(directory_settings(settings_factory, endpoint), clock, backend) as (app, client):
        svc = app.service
        for account in ("alice@example.com", "nobody@example.com"):
            await svc.request_reset_for_account(AccountInput(account, **ASK), AGENT)
        await settled(app)
        abuse = [
            await svc.contacts.check_abuse(account=a, caller=AGENT) for a in ("alice@example.com", "nobody@example.com")
        ]
        assert abuse[0] == abuse[1] and abuse[0].attempts == 1
        contact = await svc.contacts.get_contact("alice@example.com", AGENT)
        assert contact.event_count == 0  # its own request went where the directory said: not shown
        await svc.contacts.record_event("alice@example.com", "support_ticket", None, AGENT)
        contact = await svc.contacts.get_contact("alice@example.com", AGENT)
        assert [e.event_type for e in contact.recent_events] == ["support_ticket"]
        revoked = [
            (await client.call_tool("revoke_reset_tokens", {"account": a, "reason": "support"})).structured_content
            for a in ("alice@example.com", "nobody@example.com")
        ]
        assert revoked == [{"revoked": None}, {"revoked": None}]
        async with app.store.reading() as tx:  # and yet alice's link really was revoked
            token = await tx.get_token_for_send((await tx.list_sends(None, 10))[0].id)
        assert token is not None and token.revoked_at is not None


async def test_a_security_alert_goes_to_the_directory_address_or_nowhere(
    endpoint: Endpoint, settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    async with running(directory_settings(settings_factory, endpoint), clock, backend) as (app, client):
        answers = []
        for account in ("u-1", "nobody@example.com"):
            result = await client.call_tool(
                "send_security_alert", {"account": account, "reason": "new_device_sign_in", "facts": ASK}
            )
            answers.append(result.structured_content)
        assert [set(a) for a in answers] == [ANSWER_KEYS, ANSWER_KEYS]  # type: ignore[arg-type]
        assert [a["status"] for a in answers] == ["accepted", "accepted"]  # type: ignore[index]
        await settled(app)
        [mail] = backend.sent
        assert (mail.kind, mail.to) == ("security_alert", "alice@example.com") and "Alice Liddell" in mail.text


async def test_a_directory_that_cannot_answer_is_a_clear_error_and_nothing_is_sent_or_counted(
    endpoint: Endpoint, settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    settings = directory_settings(settings_factory, endpoint, rate_limit_account_per_hour=1)
    async with running(settings, clock, backend) as (app, client):
        endpoint.script = [Reply(503), Reply(503), Reply(200, {"user_id": 7.5, "email": "x"})]
        for _ in range(2):
            result = await client.call_tool("request_password_reset", {"account": "u-1", **ASK})
            assert result.is_error
            text = result.content[0].text  # type: ignore[union-attr]
            assert text.endswith(": the account directory is unavailable; nothing was sent; try again later")
            assert "7.5" not in result.content[0].text  # type: ignore[union-attr]
        await settled(app)
        assert backend.sent == []
        assert (await ask(client, "u-1"))["status"] == "accepted"  # the failures spent no limit
        async with app.store.reading() as tx:
            actions = [e.action for e in await tx.list_audit(limit=1000)]
        assert actions.count("directory_unavailable") == 2


async def test_a_real_postgresql_table_as_the_directory(
    pg_url: str, settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    url = fresh_schema_url(pg_url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL, full_name text)")
        await conn.execute("INSERT INTO users VALUES (41, 'Bob@Example.com', 'Bob Stone')")
    finally:
        await conn.close()
    sql = (
        "SELECT id::text AS user_id, email, full_name AS name FROM users "
        "WHERE lower(email) = lower(:account) OR id::text = :account"
    )
    settings = settings_factory(directory_sql=sql, directory_database_url=url, directory_answer_step_ms=0)
    async with running(settings, clock, backend) as (app, client):
        assert (await ask(client, "41"))["status"] == "accepted"
        assert (await ask(client, "BOB@example.com"))["status"] == "accepted"
        assert (await ask(client, "' OR 1=1 --"))["status"] == "accepted"  # unknown, and nothing more
        await settled(app)
        assert [(m.to, "Bob Stone" in m.text) for m in backend.sent] == [("bob@example.com", True)] * 2


# --------------------------------------------------------------------------- timing


def ks_statistic(a: list[float], b: list[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    points = sorted(set(a) | set(b))
    a, b = sorted(a), sorted(b)

    def cdf(xs: list[float], x: float) -> float:
        lo, hi = 0, len(xs)
        while lo < hi:
            mid = (lo + hi) // 2
            if xs[mid] <= x:
                lo = mid + 1
            else:
                hi = mid
        return lo / len(xs)

    return max(abs(cdf(a, x) - cdf(b, x)) for x in points)


async def answer_times(client: Client, accounts: list[str], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {a: [] for a in accounts}
    for n in range(rounds):
        for account in accounts if n % 2 else reversed(accounts):
            started = time.perf_counter()
            out = await ask(client, account, ip=f"81.2.{n // 200}.{n % 200 + 1}")
            times[account].append(time.perf_counter() - started)
            assert out["status"] == "accepted"
    return times


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_a_known_and_an_unknown_account_take_the_same_time(
    store: str, pg_url: str, endpoint: Endpoint, settings_factory: Callable[..., Settings], clock: FakeClock
) -> None:
    step_ms = 100.0  # the default: it must hold when the machine is busy too
    over: dict[str, Any] = {
        "directory_answer_step_ms": step_ms, "rate_limit_account_per_hour": 10_000,
        "rate_limit_ip_per_hour": 10_000, "caller_sends_per_hour": 10_000,
    }  # fmt: skip
    if store == "postgres":
        over["database_url"] = fresh_schema_url(pg_url)
    backend = MemoryBackend()
    rounds = 60
    async with running(directory_settings(settings_factory, endpoint, **over), clock, backend) as (app, client):
        await answer_times(client, ["alice@example.com", "nobody@example.com"], 5)  # warm up
        times = await answer_times(client, ["alice@example.com", "nobody@example.com"], rounds)
        await settled(app)
    known, unknown = times["alice@example.com"], times["nobody@example.com"]
    assert len([m for m in backend.sent if m.kind == "password_reset"]) == rounds + 5
    # Critical value of the two-sample KS test at alpha = 0.001: 1.95 * sqrt(2 / n).
    d = ks_statistic(known, unknown)
    assert d < 1.95 * (2 / rounds) ** 0.5, (d, statistics.median(known), statistics.median(unknown))
    assert min(known + unknown) >= step_ms / 1000 * 0.95


# --------------------------------------------------------------------------- without a directory


def test_a_public_bind_without_a_directory_refuses_to_start_unless_trusted(tmp_path: Path) -> None:
    from reset_mcp.cli.main import serve_settings
    from reset_mcp.server.http.app import build_http_app
    from reset_mcp.server.serve import serve

    public = {
        "data_dir": tmp_path, "secret": SECRET, "http_host": "0.0.0.0", "allowed_hosts": "reset.example.com",
        "allowed_origins": "https://app.example.com",
    }  # fmt: skip
    with pytest.raises(ConfigError, match="RESET_MCP_TRUST_CALLER_RECIPIENT=true"):
        build_http_app(load_settings(**public))
    args = argparse.Namespace(transport="streamable-http", host=None, port=None, stateless=False, workers=None)
    assert serve(serve_settings(load_settings(**public), args), args.transport) == 2
    build_http_app(load_settings(**public, trust_caller_recipient=True))
    with directory_endpoint() as ep:
        build_http_app(load_settings(**public, directory_url=ep.url, directory_secret=DIRECTORY_SECRET))
    build_http_app(load_settings(**{**public, "http_host": "127.0.0.1"}))  # loopback: local use, as before


def test_doctor_warns_that_the_caller_chooses_the_recipient(
    settings_factory: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    from reset_mcp.cli.doctor import run_doctor

    run_doctor(settings_factory())
    assert "warning: no account directory" in capsys.readouterr().out
    with directory_endpoint() as ep:
        run_doctor(settings_factory(directory_url=ep.url, directory_secret=DIRECTORY_SECRET))
    out = capsys.readouterr().out
    assert "no account directory" not in out and f"account directory: http directory {ep.url}" in out


async def test_a_serving_process_warns_at_start_on_every_transport(
    endpoint: Endpoint, settings_factory: Callable[..., Settings], caplog: Any
) -> None:
    """`serve` runs `app_with_jobs` whatever the transport: it says who chooses the recipient."""
    from reset_mcp.app import app_with_jobs
    from reset_mcp.config import NO_DIRECTORY_WARNING

    with caplog.at_level("WARNING", logger="reset_mcp"):
        async with app_with_jobs(settings_factory()):
            pass
    assert NO_DIRECTORY_WARNING in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="reset_mcp"):
        async with app_with_jobs(directory_settings(settings_factory, endpoint)):
            pass
    assert NO_DIRECTORY_WARNING not in caplog.text


async def test_the_caller_named_tools_refuse_when_a_directory_is_configured(
    endpoint: Endpoint, settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    from reset_mcp.errors import InvalidInputError
    from reset_mcp.flows.request import ResetInput

    async with build_app(directory_settings(settings_factory, endpoint), clock=clock, backend=backend) as app:
        with pytest.raises(InvalidInputError, match="give the account"):
            await app.service.request_password_reset(ResetInput(**reset_args()))
        with pytest.raises(InvalidInputError, match="give the account"):
            await app.service.contacts.send_security_alert(email="alice@example.com", user_id=None, reason="other")


async def test_the_prompt_speaks_of_accounts_and_the_policy_of_every_mode(
    endpoint: Endpoint, settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    import json

    settings = directory_settings(settings_factory, endpoint, oversight_mode="confirm_in_client")
    async with running(settings, clock, backend) as (_, client):
        [message] = (await client.get_prompt("handle_forgot_password", {})).messages
        text = str(message.content.text)  # type: ignore[union-attr]
        assert "Call request_password_reset with the account, the IP and the User-Agent" in text
        assert "accepted" in text and "pending_approval" not in text and "a person reviews" in text
        view = json.loads((await client.read_resource("reset://policy")).contents[0].text)  # type: ignore[union-attr]
        assert view["kinds"]["password_reset"] == {
            "mode": "confirm_in_client",
            "means": "sent once the person in your client confirms (held when the client cannot ask)",
        }
