"""The audit log's hash chain: it verifies after a full flow, an edited or deleted row is
found (by `verify_chain` and by `reset-mcp audit verify`), and no token is ever in it."""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from reset_mcp.app import App, build_app
from reset_mcp.audit import GENESIS, verify_chain
from reset_mcp.cli.main import main as cli_main
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings
from reset_mcp.deps import Caller
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail import OutgoingEmail
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.store import open_store
from reset_mcp.store.records import AuditEntry
from reset_mcp.tokens import TokenSigner, jti_hash
from tests.conftest import SECRET, reset_args, token_from

REPO = Path(__file__).resolve().parents[1]
RING = TokenSigner(SECRET).audit_ring  # the chain is keyed: checked with the key ring
POLICY = """
[kinds]
password_reset = "gated"
security_alert = "monitored"
"""


def _resets(backend: MemoryBackend) -> list[OutgoingEmail]:
    return [m for m in backend.sent if m.kind == "password_reset"]


async def _full_flow(settings: Settings, clock: FakeClock) -> tuple[list[str], list[str]]:
    """Held, approved, delivered, verified, consumed, replayed, alerted, rejected, revoked.

    Answers the tokens that were emailed and their jtis."""
    backend = MemoryBackend()
    async with build_app(settings, clock=clock, backend=backend) as app:
        svc = app.service
        held = await svc.request_password_reset(ResetInput(**reset_args()))
        assert held.approval_id
        clock.advance(minutes=2)
        await svc.approvals.approve(held.approval_id, Caller("cli:alice", frozenset({"approve"})), "known customer")
        token = token_from(_resets(backend)[0])
        assert (await svc.verify_reset_token(token)).valid
        assert (await svc.consume_reset_token(token, ip="81.2.69.160")).consumed
        assert not (await svc.consume_reset_token(token)).consumed  # refused replay, audited
        await svc.contacts.send_security_alert(email="alice@example.com", user_id="u-1", reason="other")
        other = await svc.request_password_reset(ResetInput(**reset_args(email="bob@example.com", user_id="u-2")))
        assert other.approval_id
        await svc.approvals.reject(other.approval_id, Caller("cli:alice", frozenset({"approve"})), "not a customer")
        third = await svc.request_password_reset(ResetInput(**reset_args()))
        assert third.approval_id
        await svc.approvals.approve(third.approval_id, Caller("cli:bob", frozenset({"approve"})))
        second_token = token_from(_resets(backend)[-1])
        await svc.revoke_reset_tokens(email="alice@example.com", user_id=None, reason="support call")
        assert not (await svc.verify_reset_token(second_token)).valid
        tokens = [token, second_token]
        jtis = [app.signer.decode(t, clock.now()).claims.jti for t in tokens]  # type: ignore[union-attr]
    return tokens, jtis


async def _entries(settings: Settings) -> list[AuditEntry]:
    store = await open_store(settings.effective_database_url)
    try:
        async with store.transaction() as tx:
            return await tx.list_audit(limit=10_000)
    finally:
        await store.aclose()


def _db(settings: Settings) -> Path:
    return settings.data_dir / "reset-mcp.db"


@pytest.fixture
def flow_settings(settings_factory: Callable[..., Settings], tmp_path: Path) -> Settings:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY, encoding="utf-8")
    return settings_factory(policy_file=policy, oversight_email="overseer@acme.test")


async def test_the_chain_verifies_after_a_full_flow_and_records_every_decision(
    flow_settings: Settings, clock: FakeClock
) -> None:
    await _full_flow(flow_settings, clock)
    entries = await _entries(flow_settings)
    report = verify_chain(entries, RING)
    assert report.ok and report.checked == len(entries) and report.problem is None
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))

    actions = [(e.actor, e.action) for e in entries]
    for expected in [
        ("stdio", "decision"),
        ("cli:alice", "approval_approved"),
        ("cli:alice", "approval_rejected"),
        ("cli:bob", "approval_approved"),
        ("dispatcher", "delivery_sent"),
        ("stdio", "token_consumed"),
        ("stdio", "consume_refused"),
        ("stdio", "tokens_revoked"),
        ("stdio", "verify_refused"),
    ]:
        assert expected in actions, expected
    decisions = [e.detail for e in entries if e.action == "decision"]
    held = [d for d in decisions if d["outcome"] == "hold"]
    assert held and all(d["mode"] == "gated" and "approval" in d["reason"] for d in held)
    assert any(d["kind"] == "security_alert" and d["outcome"] == "send_and_notify" for d in decisions)
    rejected = next(e for e in entries if e.action == "approval_rejected")
    assert rejected.detail["reason"] == "not a customer"


async def test_no_token_or_jti_anywhere_in_the_audit_log_or_database(flow_settings: Settings, clock: FakeClock) -> None:
    tokens, jtis = await _full_flow(flow_settings, clock)
    with sqlite3.connect(_db(flow_settings)) as conn:
        audit_dump = "\n".join(repr(row) for row in conn.execute("SELECT * FROM audit"))
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        everything = "\n".join(repr(row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"'))
    assert "decision" in audit_dump
    for secret in [*tokens, *jtis, SECRET]:
        assert secret not in audit_dump
        assert secret not in everything
    for token in tokens:  # not even the signature part alone
        assert token.rsplit(".", 1)[1] not in everything
    # The store keys tokens by a hash of the jti; the audit log does not even carry that.
    for jti in jtis:
        assert jti_hash(jti) in everything and jti_hash(jti) not in audit_dump


def _tamper(settings: Settings, sql: str, *args: Any) -> None:
    with sqlite3.connect(_db(settings)) as conn:
        assert conn.execute(sql, args).rowcount == 1
    conn.close()


def _cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MCP_")}
    env.update(RESET_MCP_DATA_DIR=str(settings.data_dir), RESET_MCP_SECRET=SECRET, RESET_MCP_EMAIL_BACKEND="memory")
    return env


def _cli_in_process(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    for key, value in _cli_env(settings).items():
        if key.startswith("RESET_MCP_"):
            monkeypatch.setenv(key, value)
    return cli_main(list(args))


@pytest.fixture
def flowed(flow_settings: Settings, clock: FakeClock) -> Settings:
    anyio.run(_full_flow, flow_settings, clock)
    return flow_settings


def test_an_edited_row_is_detected_by_the_cli_subprocess(flowed: Settings) -> None:
    entries = anyio.run(_entries, flowed)
    victim = next(e for e in entries if e.action == "approval_rejected")
    _tamper(flowed, "UPDATE audit SET detail = ? WHERE seq = ?", '{"approval_id":"x","reason":"ok"}', victim.seq)

    report = verify_chain(anyio.run(_entries, flowed), RING)
    assert not report.ok and report.bad_seq == victim.seq
    assert report.problem == f"entry {victim.seq} was altered"
    assert report.checked == victim.seq - 1

    done = subprocess.run(
        [sys.executable, "-m", "reset_mcp", "audit", "verify"],
        env=_cli_env(flowed),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert f"audit log BROKEN at entry {victim.seq}: entry {victim.seq} was altered" in done.stderr


def test_any_edited_field_breaks_the_chain(flowed: Settings) -> None:
    entries = anyio.run(_entries, flowed)
    edits: list[dict[str, Any]] = [
        {"actor": "cli:mallory"},
        {"action": "approval_rejected"},
        {"subject": "req_other"},
        {"at": entries[2].at + timedelta(seconds=1)},
        {"detail": {**entries[2].detail, "reason": "edited"}},
        {"hash": "f" * 64},
    ]
    for edit in edits:
        edited = [*entries[:2], replace(entries[2], **edit), *entries[3:]]
        report = verify_chain(edited, RING)
        assert not report.ok and report.bad_seq in (3, 4), edit  # a new hash breaks the next link
    assert verify_chain(entries, RING).ok


def test_a_deleted_middle_row_is_detected(
    flowed: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    count = len(anyio.run(_entries, flowed))
    assert count > 6
    _tamper(flowed, "DELETE FROM audit WHERE seq = 4")

    report = verify_chain(anyio.run(_entries, flowed), RING)
    assert not report.ok and report.problem == "entry 4 is missing (next is 5)" and report.checked == 3

    assert _cli_in_process(flowed, monkeypatch, "audit", "verify") == 1
    err = capsys.readouterr().err
    assert "audit log BROKEN at entry 5: entry 4 is missing" in err


def test_a_relinked_row_is_still_detected(flowed: Settings) -> None:
    # Deleting a row and pointing the next one at its predecessor breaks that row's own hash.
    entries = anyio.run(_entries, flowed)
    _tamper(flowed, "DELETE FROM audit WHERE seq = 4")
    _tamper(flowed, "UPDATE audit SET seq = 4, prev_hash = ? WHERE seq = 5", entries[2].hash)
    report = verify_chain(anyio.run(_entries, flowed), RING)
    assert not report.ok and report.bad_seq == 4 and report.problem == "entry 4 was altered"


def test_cli_verify_and_tail_on_an_intact_log(
    flowed: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    count = len(anyio.run(_entries, flowed))
    assert _cli_in_process(flowed, monkeypatch, "audit", "verify") == 0
    assert f"audit log intact: {count} entries, hash chain verified" in capsys.readouterr().out

    assert _cli_in_process(flowed, monkeypatch, "audit", "tail", "-n", "3") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    seqs = [int(line.split()[0]) for line in lines]
    assert seqs == [count - 2, count - 1, count]
    assert "tokens_revoked" in lines[-2] and "support call" in lines[-2]
    assert "verify_refused" in lines[-1] and '{"reason": "revoked"}' in lines[-1]

    assert _cli_in_process(flowed, monkeypatch, "audit", "tail") == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == min(20, count)


async def test_a_refused_token_is_audited_without_the_token(app: App, clock: FakeClock) -> None:
    tampered = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJl"
    assert not (await app.service.verify_reset_token(tampered)).valid
    async with app.store.transaction() as tx:
        entries = await tx.list_audit()
    [entry] = [e for e in entries if e.action == "verify_refused"]
    assert entry.detail == {"reason": "bad_signature"}
    assert tampered not in repr(entry) and "c2lnbmF0dXJl" not in repr(entry)
    assert verify_chain(entries, RING).ok
