"""The oversight policy (issue 3): every mode for every email kind, recipient rules, the
per-address cap, held emails approved or rejected by a human (never by the agent),
approval expiry, `confirm` through MCP elicitation in both protocol eras, the overseer's
CLI on the same data dir, and policy-file errors."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import mcp_types
import pytest
from mcp import Client

from reset_mcp.app import App, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings
from reset_mcp.deps import Caller
from reset_mcp.emails.registry import EmailKinds
from reset_mcp.errors import ConfigError, ConflictError, PermissionDeniedError
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail import DeliveryReceipt, OutgoingEmail
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.policy.oversight import load_policy
from reset_mcp.vocab import AlertReason
from tests.conftest import SECRET, client_for, reset_args, text_of_eml, token_from, token_from_text

MODES = ("read_only", "gated", "confirm", "confirm_in_client", "monitored", "autonomous")
KINDS = ("password_reset", "security_alert", "password_changed")
GATED_KINDS = EmailKinds().gated
OVERSEER = "overseer@acme.test"
ALICE = "alice@example.com"
CLI_ALICE = Caller("cli:alice", frozenset({"approve"}))
REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


@asynccontextmanager
async def open_app(settings: Settings, clock: FakeClock, backend: MemoryBackend) -> AsyncIterator[App]:
    async with build_app(settings, clock=clock, backend=backend) as app:
        yield app


def _policy(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(body, encoding="utf-8")
    return path


async def _token_for_alice(settings: Settings, clock: FakeClock) -> str:
    """A live reset token, minted by an autonomous App on the same data dir."""
    setup_backend = MemoryBackend()
    async with open_app(settings, clock, setup_backend) as setup:
        out = await setup.service.request_password_reset(ResetInput(**reset_args()))
        assert out.status == "sent"
    return token_from(setup_backend.sent[0])


async def _trigger(client: Client, kind: str, token: str | None) -> dict[str, Any]:
    """Make the system want to send one email of `kind` to alice; the tool's answer."""
    if kind == "password_reset":
        result = await client.call_tool("request_password_reset", reset_args())
    elif kind == "security_alert":
        result = await client.call_tool(
            "send_security_alert", {"email": ALICE, "user_id": "u-1", "reason": "new_device_sign_in"}
        )
    else:
        assert token is not None
        result = await client.call_tool("consume_reset_token", {"token": token, "ip": "81.2.69.160"})
    assert not result.is_error, result.content
    return result.structured_content


async def _send_for(app: App, kind: str, out: dict[str, Any]) -> Any:
    async with app.store.transaction() as tx:
        if "request_id" in out:
            return await tx.get_send(out["request_id"])
        [notice] = [s for s in await tx.list_sends(None, 1000) if s.kind == kind]
        return notice


def _assert_no_link(notice: OutgoingEmail, *tokens: str | None) -> None:
    for body in (notice.text, notice.html):
        assert "token=" not in body and "/reset?" not in body
        for token in tokens:
            assert token is None or token not in body


async def _assert_outcome(
    app: App, backend: MemoryBackend, kind: str, mode: str, out: dict[str, Any], token: str | None
) -> None:
    """What one email of `kind` became under `mode`: the tool's answer and the backend's mail."""
    status = out["notice_status"] if kind == "password_changed" else out["status"]
    if kind == "password_changed":
        assert out["consumed"] is True  # the password change itself never waits on the notice
    send = await _send_for(app, kind, out)
    pending = [a for a in (await app.service.approvals.list_pending()).pending if a.kind == kind]
    sent = [(m.kind, m.to) for m in backend.sent]
    if mode == "read_only":
        assert status == "blocked"
        assert send.status == "blocked" and "read_only" in (send.reason or "")
        if kind != "password_changed":
            assert "oversight mode read_only" in out["reason"]
        assert sent == [] and pending == []
    elif mode in ("gated", "confirm", "confirm_in_client"):
        # confirm: held for a person on the approvals page whatever the client; confirm_in_client:
        # this client cannot elicit (and alerts and notices are never asked): held.
        assert status == "pending_approval" and send.status == "pending_approval"
        assert [(a.recipient, a.request_id) for a in pending] == [(ALICE, send.id)]
        assert sent == [("oversight_notice", OVERSEER)]  # only the overseer hears of it
        _assert_no_link(backend.sent[0], token)
        assert pending[0].id in backend.sent[0].text  # the overseer can act on it
    elif mode == "monitored":
        assert status == "sent"
        assert sent == [(kind, ALICE), ("oversight_notice", OVERSEER)]
        user_mail, notice = backend.sent
        _assert_no_link(notice, token, token_from(user_mail) if kind == "password_reset" else None)
        assert ALICE in notice.text
    else:
        assert status == "sent" and sent == [(kind, ALICE)] and pending == []
    if kind == "password_reset" and mode in ("read_only", "gated", "confirm", "confirm_in_client"):
        async with app.store.transaction() as tx:  # no link exists for an unsent reset
            assert await tx.get_token_for_send(send.id) is None


@pytest.mark.parametrize("how", ["settings", "policy_file"])
@pytest.mark.parametrize("mode", MODES)
async def test_every_mode_for_every_kind(
    mode: str, how: str, settings_factory: Callable[..., Settings], clock: FakeClock, tmp_path: Path
) -> None:
    overrides: dict[str, Any] = {"oversight_email": OVERSEER}
    if how == "settings":
        overrides["oversight_mode"] = mode
    else:  # the global mode stays autonomous; the file sets each kind
        body = "[kinds]\n" + "".join(f'{kind} = "{mode}"\n' for kind in KINDS)
        overrides["policy_file"] = _policy(tmp_path, body)
    token = await _token_for_alice(settings_factory(), clock)

    backend = MemoryBackend()
    async with open_app(settings_factory(**overrides), clock, backend) as app, client_for(app) as client:
        assert app.policy.mode == ("autonomous" if how == "policy_file" else mode)
        # password_changed first: a reset sent later would supersede the setup token.
        for kind in ("password_changed", "password_reset", "security_alert"):
            assert app.policy.mode_for(kind) == mode
            backend.sent.clear()
            out = await _trigger(client, kind, token)
            await _assert_outcome(app, backend, kind, mode, out, token)
        if mode in ("gated", "confirm", "confirm_in_client"):
            # Each held email of each kind goes out once a human approves it.
            backend.sent.clear()
            for held in (await app.service.approvals.list_pending()).pending:
                decision = await app.service.approvals.approve(held.id, CLI_ALICE)
                assert decision.delivery is not None and decision.delivery.status == "sent"
            assert sorted((m.kind, m.to) for m in backend.sent) == sorted((kind, ALICE) for kind in KINDS)


async def test_each_kind_follows_its_own_mode_from_the_policy_file(
    settings_factory: Callable[..., Settings], clock: FakeClock, tmp_path: Path
) -> None:
    body = '[kinds]\npassword_reset = "gated"\nsecurity_alert = "monitored"\npassword_changed = "read_only"\n'
    settings = settings_factory(
        oversight_mode="autonomous", oversight_email=OVERSEER, policy_file=_policy(tmp_path, body)
    )
    token = await _token_for_alice(settings_factory(), clock)
    backend = MemoryBackend()
    async with open_app(settings, clock, backend) as app, client_for(app) as client:
        for kind, mode in (
            ("password_changed", "read_only"),
            ("password_reset", "gated"),
            ("security_alert", "monitored"),
        ):
            backend.sent.clear()
            out = await _trigger(client, kind, token)
            await _assert_outcome(app, backend, kind, mode, out, token)


# --------------------------------------------------------------------------- recipient rules


RULES = """
[recipients]
allow_domains = ["example.com"]
allow_addresses = ["partner@elsewhere.org"]
deny_addresses = ["ceo@example.com"]
deny_domains = ["evil.example.com"]
"""


RULE_CASES = [
    ("alice@example.com", None),
    ("bob@eu.example.com", None),  # a subdomain of an allowed domain
    ("partner@elsewhere.org", None),
    ("ceo@example.com", "deny_addresses: ceo@example.com"),  # deny wins over the allowed domain
    ("CEO@Example.com", "deny_addresses: ceo@example.com"),
    ("mallory@evil.example.com", "deny_domains: evil.example.com"),  # deny wins over example.com
    ("mallory@x.evil.example.com", "deny_domains: evil.example.com"),
    ("stranger@other.org", "allow lists: recipient is not on them"),
]


async def test_allow_and_deny_by_address_and_domain(
    settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend, tmp_path: Path
) -> None:
    settings = settings_factory(policy_file=_policy(tmp_path, RULES))
    async with open_app(settings, clock, backend) as app, client_for(app) as client:
        for n, (email, rule) in enumerate(RULE_CASES):
            backend.sent.clear()
            args = reset_args(email=email, user_id=f"u-{n}")
            out = (await client.call_tool("request_password_reset", args)).structured_content
            reason = list(AlertReason)[n % len(AlertReason)]  # one address appears twice (case): not deduplicated
            alert = await app.service.contacts.send_security_alert(email=email, user_id=None, reason=reason)
            if rule is None:
                assert out["status"] == "sent" and alert.status == "sent", email
                assert [m.kind for m in backend.sent] == ["password_reset", "security_alert"]
            else:
                assert out["status"] == "blocked" and rule in out["reason"], email
                assert alert.status == "blocked" and rule in (alert.reason or "")
                assert backend.sent == []


async def test_per_address_hourly_cap_counts_every_kind(
    settings_factory: Callable[..., Settings], clock: FakeClock, tmp_path: Path
) -> None:
    backend = MemoryBackend()
    settings = settings_factory(policy_file=_policy(tmp_path, "[recipients]\nmax_per_hour = 3\n"))
    async with open_app(settings, clock, backend) as app:
        svc = app.service
        assert (await svc.request_password_reset(ResetInput(**reset_args()))).status == "sent"
        alert = await svc.contacts.send_security_alert(email=ALICE, user_id="u-1", reason="new_device_sign_in")
        assert alert.status == "sent"
        consumed = await svc.consume_reset_token(token_from(backend.sent[0]))
        assert consumed.consumed and consumed.notice_status == "sent"  # the third email this hour
        clock.advance(minutes=30)
        fourth = await svc.request_password_reset(ResetInput(**reset_args()))
        assert fourth.status == "blocked"
        assert "max_per_hour: 3 emails to this address in the last hour" in (fourth.reason or "")
        other = await svc.contacts.send_security_alert(email=ALICE, user_id="u-1", reason="other")
        assert other.status == "blocked"
        # Another address is not affected by alice's cap.
        bob = await svc.request_password_reset(ResetInput(**reset_args(email="bob@example.com", user_id="u-2")))
        assert bob.status == "sent"
        kinds = [m.kind for m in backend.sent]
        assert kinds == ["password_reset", "security_alert", "password_changed", "password_reset"]
        clock.advance(minutes=30, seconds=1)  # the first three left the hour
        assert (await svc.request_password_reset(ResetInput(**reset_args()))).status == "sent"


# --------------------------------------------------------------------------- approvals


@pytest.fixture
async def gated(
    settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> AsyncIterator[App]:
    async with open_app(settings_factory(oversight_mode="gated"), clock, backend) as app:
        yield app


async def test_gated_reset_mints_the_token_only_at_approval_and_delivers_once(
    gated: App, clock: FakeClock, backend: MemoryBackend
) -> None:
    svc = gated.service
    requested_at = clock.now()
    out = await svc.request_password_reset(ResetInput(**reset_args()))
    assert out.status == "pending_approval" and out.approval_id and out.expires_at is None
    async with gated.store.transaction() as tx:
        assert await tx.get_token_for_send(out.request_id) is None
        assert await tx.outbox_for_send(out.request_id) == []
    [held] = (await svc.approvals.list_pending()).pending
    assert held.expires_at == requested_at + timedelta(minutes=15)  # default window: the token TTL
    assert held.requested_by == "stdio" and "alice@example.com" in held.summary

    clock.advance(minutes=10)
    approved_at = clock.now()
    decision = await svc.approvals.approve(out.approval_id, CLI_ALICE, "looks fine")
    assert decision.status == "approved" and decision.delivery is not None and decision.delivery.status == "sent"
    assert [(m.kind, m.to) for m in backend.sent] == [("password_reset", ALICE)]
    async with gated.store.transaction() as tx:
        record = await tx.get_token_for_send(out.request_id)
    assert record is not None
    assert record.issued_at == approved_at and record.expires_at == approved_at + timedelta(minutes=15)

    # The link lives its full lifetime from approval, past request time + TTL.
    token = token_from(backend.sent[0])
    clock.advance(minutes=14)
    verified = await svc.verify_reset_token(token)
    assert verified.valid and verified.expires_at == approved_at + timedelta(minutes=15)

    with pytest.raises(ConflictError):
        await svc.approvals.approve(out.approval_id, CLI_ALICE)
    with pytest.raises(ConflictError):
        await svc.approvals.reject(out.approval_id, Caller("cli:bob", frozenset({"approve"})), "too late")
    await gated.jobs.run_once()  # expire approvals, deliver what is due
    assert len(backend.sent) == 1
    status = await svc.approvals.send_status(out.request_id)
    assert status.status == "sent" and status.approval is not None
    assert (status.approval.status, status.approval.decided_by) == ("approved", "cli:alice")
    assert [d.status for d in status.deliveries] == ["sent"]


async def test_an_approved_send_reads_queued_while_it_is_being_delivered(
    gated: App, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The approval's own transaction moves the request out of pending_approval: what a
    # status query sees while the email is on its way (or if the process stops then).
    out = await gated.service.request_password_reset(ResetInput(**reset_args()))
    assert out.approval_id
    seen: list[str] = []
    send = backend.send

    async def watching_send(email: OutgoingEmail) -> DeliveryReceipt:
        seen.append((await gated.service.approvals.send_status(out.request_id)).status)
        return await send(email)

    monkeypatch.setattr(backend, "send", watching_send)
    decision = await gated.service.approvals.approve(out.approval_id, CLI_ALICE)
    assert decision.delivery is not None and decision.delivery.status == "sent"
    assert seen == ["queued"]


async def test_rejected_approval_never_delivers(gated: App, clock: FakeClock, backend: MemoryBackend) -> None:
    svc = gated.service
    out = await svc.request_password_reset(ResetInput(**reset_args()))
    assert out.approval_id
    decision = await svc.approvals.reject(out.approval_id, CLI_ALICE, "not our customer")
    assert decision.status == "rejected" and decision.delivery is None
    with pytest.raises(ConflictError):
        await svc.approvals.approve(out.approval_id, Caller("cli:bob", frozenset({"approve"})))
    clock.advance(minutes=5)
    await gated.jobs.run_once()  # expire approvals, deliver what is due
    assert backend.sent == []
    status = await svc.approvals.send_status(out.request_id)
    assert status.status == "rejected" and status.reason == "not our customer" and status.deliveries == []
    async with gated.store.transaction() as tx:
        assert await tx.get_token_for_send(out.request_id) is None


@pytest.mark.parametrize("how", ["expire_due", "list"])
async def test_approval_past_its_window_expires_and_never_delivers(
    how: str, gated: App, clock: FakeClock, backend: MemoryBackend
) -> None:
    svc = gated.service
    out = await svc.request_password_reset(ResetInput(**reset_args()))
    assert out.approval_id
    clock.advance(minutes=14, seconds=59)
    assert await svc.approvals.expire_due() == 0  # still inside the window
    clock.advance(seconds=1)
    if how == "expire_due":
        assert await svc.approvals.expire_due() == 1
    else:
        assert (await svc.approvals.list_pending()).count == 0
    assert (await svc.approvals.get(out.approval_id)).status == "expired"
    with pytest.raises(ConflictError):
        await svc.approvals.approve(out.approval_id, CLI_ALICE)
    await gated.jobs.run_once()  # expire approvals, deliver what is due
    assert backend.sent == []
    status = await svc.approvals.send_status(out.request_id)
    assert status.status == "expired" and status.deliveries == []


async def test_an_approval_cannot_be_granted_with_the_requesting_credentials(
    gated: App, backend: MemoryBackend
) -> None:
    svc = gated.service
    agent = Caller("key:agent-7", frozenset({"send", "redeem"}))
    out = await svc.request_password_reset(ResetInput(**reset_args()), agent)
    assert out.approval_id
    for decide in (svc.approvals.approve, svc.approvals.reject):
        with pytest.raises(PermissionDeniedError):
            await decide(out.approval_id, agent)
    # The in-process agent (stdio) cannot approve what it requested either.
    stdio_out = await svc.request_password_reset(ResetInput(**reset_args(email="bob@example.com", user_id="u-2")))
    assert stdio_out.approval_id
    with pytest.raises(PermissionDeniedError):
        await svc.approvals.approve(stdio_out.approval_id, Caller("stdio"))
    assert backend.sent == []
    assert (await svc.approvals.list_pending()).count == 2


async def test_the_agents_tools_offer_no_way_to_approve(gated: App) -> None:
    async with client_for(gated) as client:
        await client.call_tool("request_password_reset", reset_args())
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for name in tools:
            assert not any(word in name for word in ("approve", "reject", "decide")), name
        for name in ("list_pending_sends", "get_send_status"):
            annotations = tools[name].annotations
            assert annotations is not None and annotations.read_only_hint is True
        pending = (await client.call_tool("list_pending_sends", {})).structured_content
        assert pending["count"] == 1 and pending["pending"][0]["status"] == "pending"
        status = await client.call_tool("get_send_status", {"request_id": pending["pending"][0]["request_id"]})
        assert status.structured_content["status"] == "pending_approval"
    assert (await gated.service.approvals.list_pending()).count == 1  # looking changed nothing


# --------------------------------------------------------------------------- confirm (elicitation)


async def _accept(context: Any, params: Any) -> mcp_types.ElicitResult:
    return mcp_types.ElicitResult(action="accept", content={"send": True})


async def _accept_but_no(context: Any, params: Any) -> mcp_types.ElicitResult:
    return mcp_types.ElicitResult(action="accept", content={"send": False})


async def _decline(context: Any, params: Any) -> mcp_types.ElicitResult:
    return mcp_types.ElicitResult(action="decline")


@pytest.mark.parametrize("era", ["legacy", "auto"])
async def test_confirm_in_client_mode_asks_the_human_in_the_client(
    era: str, settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend
) -> None:
    cases = [(_accept, "sent"), (_accept_but_no, "rejected"), (_decline, "rejected"), (None, "pending_approval")]
    async with open_app(settings_factory(oversight_mode="confirm_in_client"), clock, backend) as app:
        for n, (callback, expected) in enumerate(cases):
            asked: list[str] = []

            async def recording(
                context: Any, params: Any, callback: Any = callback, asked: list[str] = asked
            ) -> mcp_types.ElicitResult:
                asked.append(params.message)
                return await callback(context, params)

            kwargs: dict[str, Any] = {"mode": era} if era == "legacy" else {}
            if callback is not None:
                kwargs["elicitation_callback"] = recording
            backend.sent.clear()
            email = f"user{n}@example.com"
            async with client_for(app, **kwargs) as client:
                result = await client.call_tool("request_password_reset", reset_args(email=email, user_id=f"u-{n}"))
            assert not result.is_error, result.content
            out = result.structured_content
            pending = [a for a in (await app.service.approvals.list_pending()).pending if a.recipient == email]
            assert out["status"] == expected, (era, expected)
            if callback is not None:
                assert len(asked) == 1 and email in asked[0] and "198.51.100.7" in asked[0]
            if expected == "sent":
                assert [m.kind for m in backend.sent] == ["password_reset"] and pending == []
            elif expected == "rejected":
                assert backend.sent == [] and pending == [] and "declined" in out["reason"]
            else:
                assert backend.sent == [] and [a.id for a in pending] == [out["approval_id"]]


async def test_confirm_in_client_does_not_ask_when_the_policy_does_not(app: App) -> None:
    assert app.policy.mode_for("password_reset") == "autonomous"
    asked: list[str] = []

    async def cb(context: Any, params: Any) -> mcp_types.ElicitResult:
        asked.append(params.message)
        return mcp_types.ElicitResult(action="decline")

    async with client_for(app, elicitation_callback=cb) as c:
        out = (await c.call_tool("request_password_reset", reset_args())).structured_content
    assert out["status"] == "sent" and asked == []


async def test_confirm_in_client_never_asks_about_an_email_the_policy_blocks_or_the_service_refuses(
    settings_factory: Callable[..., Settings], clock: FakeClock, backend: MemoryBackend, tmp_path: Path
) -> None:
    asked: list[str] = []

    async def cb(context: Any, params: Any) -> mcp_types.ElicitResult:
        asked.append(params.message)
        return mcp_types.ElicitResult(action="accept", content={"send": True})

    policy = _policy(tmp_path, 'mode = "confirm_in_client"\n[recipients]\ndeny_domains = ["blocked.example.com"]\n')
    async with (
        open_app(settings_factory(policy_file=policy), clock, backend) as app,
        client_for(app, elicitation_callback=cb) as client,
    ):
        denied = await client.call_tool("request_password_reset", reset_args(email="eve@blocked.example.com"))
        assert denied.structured_content["status"] == "blocked"
        assert "deny_domains: blocked.example.com" in denied.structured_content["reason"]
        invalid = await client.call_tool("request_password_reset", reset_args(email="not-an-email"))
        assert invalid.is_error and "email" in invalid.content[0].text
        assert asked == [] and backend.sent == []
        ok = await client.call_tool("request_password_reset", reset_args(email="Alice@Example.com"))
        assert ok.structured_content["status"] == "sent" and len(asked) == 1


# --------------------------------------------------------------------------- the overseer's CLI


def _cli_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MCP_")}
    env.update(
        RESET_MCP_DATA_DIR=str(data_dir),
        RESET_MCP_SECRET=SECRET,
        RESET_MCP_OVERSIGHT_MODE="gated",
        RESET_MCP_EMAIL_BACKEND="outbox",
        RESET_MCP_FROM_ADDRESS="auth@acme.test",
        USER="alice",
        LOGNAME="alice",
    )
    return env


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await anyio.run_process([sys.executable, "-m", "reset_mcp", *args], env=env, cwd=REPO, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def _both(a: Awaitable[T], b: Awaitable[T]) -> tuple[T, T]:
    """Two CLI processes at once, as two overseers might: SQLite's write lock serialises them."""
    results: dict[int, T] = {}

    async def run(i: int, aw: Awaitable[T]) -> None:
        results[i] = await aw

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, 0, a)
        tg.start_soon(run, 1, b)
    return results[0], results[1]


async def test_cli_lists_approves_and_rejects_on_the_same_data_dir(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    data_dir = tmp_path / "shared"
    settings = settings_factory(data_dir=data_dir, oversight_mode="gated", email_backend="outbox")
    outbox = settings.effective_outbox_dir
    # The wall clock here: the CLI process runs on it, and would expire a fake-dated approval.
    async with build_app(settings) as app:
        first = await app.service.request_password_reset(ResetInput(**reset_args()))
        second = await app.service.request_password_reset(
            ResetInput(**reset_args(email="bob@example.com", user_id="u-2"))
        )
    assert first.approval_id and second.approval_id
    env = _cli_env(data_dir)

    code, out, err = await _cli(env, "approvals", "list")
    assert code == 0, err
    assert first.approval_id in out and second.approval_id in out and "password_reset" in out
    assert "held because: oversight mode gated" in out
    assert "given by the requester (data): user_id “u-1”" in out
    assert list(outbox.glob("*.eml")) == []

    # A shell is no credential: without an approve key nothing is decided (issue 20).
    code, _, err = await _cli(env, "approvals", "approve", first.approval_id)
    assert code == 2 and "needs an API key with the approve scope" in err and len(err.strip().splitlines()) == 1
    code, out, err = await _cli(env, "keys", "create", "--scope", "send", "--name", "agent")
    send_key = out.strip() if code == 0 else ""
    assert send_key.startswith("rmcp_"), out
    code, _, err = await _cli(env, "approvals", "approve", first.approval_id, "--key", send_key)
    assert code == 2 and "lacks the 'approve' scope" in err
    code, out, err = await _cli(env, "keys", "create", "--scope", "approve", "--name", "alice")
    approve_key = out.strip()
    async with build_app(settings) as app:
        assert (await app.service.approvals.list_pending()).count == 2  # still pending, both

    (code, out, err), (rcode, rout, rerr) = await _both(
        _cli(env, "approvals", "approve", first.approval_id, "--key", approve_key),
        _cli({**env, "RESET_MCP_APPROVE_KEY": approve_key}, "approvals", "reject", second.approval_id,
             "--reason", "unknown person"),
    )  # fmt: skip
    assert code == 0, err
    assert f"{first.approval_id}: approved" in out and "delivery sent" in out
    assert rcode == 0, rerr
    assert f"{second.approval_id}: rejected" in rout
    [eml] = list(outbox.glob("*.eml"))  # exactly once, and nothing for the rejected one
    assert "bob@example.com" not in eml.read_text(errors="replace")
    token = token_from_text(text_of_eml(eml))

    async with build_app(settings) as app:
        assert (await app.service.verify_reset_token(token)).valid
        status = await app.service.approvals.send_status(first.request_id)
        assert status.approval is not None and status.approval.decided_by.endswith(" (alice)")
        assert status.approval.decided_by.startswith("key:")
        assert (await app.service.approvals.send_status(second.request_id)).status == "rejected"
        assert (await app.service.approvals.list_pending()).count == 0
        with pytest.raises(ConflictError, match="already approved"):
            await app.service.approvals.approve(first.approval_id, Caller("cli:bob", frozenset({"approve"})))
    assert list(outbox.glob("*.eml")) == [eml]


# --------------------------------------------------------------------------- policy files


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("mode = 'gated'\n[kinds\n", "is not valid TOML"),
        ("mode = 'yolo'\n", "mode must be one of"),
        ("[kinds]\npassword_reset = 'sometimes'\n", "mode must be one of"),
        ("[kinds]\nnewsletter = 'gated'\n", "[kinds] may name only"),
        ("colour = 'blue'\n", "unknown keys ['colour']"),
        ("[recipients]\nallow_domain = ['example.com']\n", "unknown [recipients] keys ['allow_domain']"),
        ("[recipients]\nmax_per_hour = 0\n", "max_per_hour must be a positive integer"),
        ("[recipients]\ndeny_domains = 'example.com'\n", "deny_domains must be a list of strings"),
    ],
)
async def test_policy_file_errors_name_the_file(
    body: str, message: str, tmp_path: Path, settings_factory: Callable[..., Settings], clock: FakeClock
) -> None:
    path = _policy(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        load_policy("autonomous", path, GATED_KINDS)
    assert str(path) in str(caught.value) and message in str(caught.value)
    with pytest.raises(ConfigError, match=r"policy\.toml"):
        async with open_app(settings_factory(policy_file=path), clock, MemoryBackend()):
            pass


def test_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*nowhere\.toml"):
        load_policy("autonomous", tmp_path / "nowhere.toml", GATED_KINDS)


def test_policy_file_overrides_the_global_mode_per_kind(tmp_path: Path) -> None:
    path = _policy(tmp_path, 'mode = "monitored"\n[kinds]\nsecurity_alert = "gated"\n')
    policy = load_policy("read_only", path, GATED_KINDS)
    assert policy.describe()["modes"] == {
        "password_reset": "monitored",
        "security_alert": "gated",
        "password_changed": "monitored",
    }
    assert load_policy("gated", None, GATED_KINDS).mode_for("password_changed") == "gated"
    decision = policy.decide("security_alert", "a@example.com")
    assert decision.action == "hold" and "gated" in decision.reason


async def test_the_desk_refuses_deciders_without_the_approve_scope_and_the_requester_even_with_it(
    gated: App, backend: MemoryBackend
) -> None:
    svc = gated.service
    both = Caller("key:both", frozenset({"send", "approve"}))
    out = await svc.request_password_reset(ResetInput(**reset_args()), both)
    assert out.approval_id
    with pytest.raises(PermissionDeniedError, match="credentials that requested it"):
        await svc.approvals.approve(out.approval_id, both)
    with pytest.raises(PermissionDeniedError, match="'approve' scope"):
        await svc.approvals.approve(out.approval_id, Caller("key:other-agent", frozenset({"send"})))
    assert backend.sent == []
    assert (await svc.approvals.approve(out.approval_id, CLI_ALICE)).status == "approved"
    assert [m.kind for m in backend.sent] == ["password_reset"]
