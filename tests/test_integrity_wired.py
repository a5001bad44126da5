"""What a database writer without the secret can no longer do, end to end (issue 22,
items 6 and 7, as wired): token rows are MACed at release and checked by verify,
consume, "this wasn't me" and the dispatcher; the audit chain is keyed from the first
start, `audit verify` checks it with the key ring and the anchor file, and /metrics
shows the head."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from reset_mcp.app import App, build_app
from reset_mcp.audit import entry_hash, hash_kid, verify_chain
from reset_mcp.cli.main import main as cli_main
from reset_mcp.clock import FakeClock
from reset_mcp.config import Settings
from reset_mcp.flows.reset import ResetInput
from reset_mcp.ids import new_id
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.store import open_store
from reset_mcp.store import sqlite as sqlite_store
from reset_mcp.store.records import AuditEntry, OutboxRow
from reset_mcp.store.schema import MIGRATIONS
from reset_mcp.tokens import TokenSigner
from reset_mcp.vocab import OutboxStatus
from tests.conftest import SECRET, reset_args, token_from
from tests.httpserver import running_server

MALLORY = "mallory@evil.test"


def _db(settings: Settings) -> Path:
    return settings.data_dir / "reset-mcp.db"


def _sql(settings: Settings, sql: str, *args: Any) -> int:
    with sqlite3.connect(_db(settings)) as conn:
        count = conn.execute(sql, args).rowcount
    conn.close()
    return count


async def _reset(app: App, backend: MemoryBackend) -> tuple[str, str]:
    """(request id, the link's token) of a reset sent to alice."""
    result = await app.service.request_password_reset(ResetInput(**reset_args()))
    return result.request_id, token_from(backend.sent[-1])


# --------------------------------------------------------------------------- token rows


async def test_release_writes_the_mac(app: App, backend: MemoryBackend) -> None:
    request_id, _ = await _reset(app, backend)
    async with app.store.reading() as tx:
        token = await tx.get_token_for_send(request_id)
    assert token is not None and token.mac is not None and app.signer.row_mac_ok(token)


async def test_the_revived_row_attack_is_refused_by_the_dispatcher(
    app: App, backend: MemoryBackend, settings: Settings
) -> None:
    request_id, token = await _reset(app, backend)
    assert (await app.service.consume_reset_token(token)).consumed
    async with app.store.reading() as tx:
        [row] = await tx.outbox_for_send(request_id)
    # The writer revives the used row, points it at their address, and queues a row that
    # re-mints its link for that address.
    assert _sql(settings, "UPDATE tokens SET consumed_at = NULL, email = ? WHERE send_id = ?", MALLORY, request_id)
    claims = {**row.payload["claims"], "email": MALLORY}
    planted = replace(
        row, id=new_id("msg"), message_id="<planted@x>", recipient=MALLORY, payload={**row.payload, "claims": claims},
        status=OutboxStatus.PENDING, attempts=0, lease_owner=None, lease_until=None, sent_at=None,
    )  # fmt: skip
    async with app.store.transaction() as tx:
        await tx.insert_outbox(planted)
    sent_before = len(backend.sent)

    assert await app.dispatcher.run_once() == 1
    assert len(backend.sent) == sent_before  # nothing mailed, to anyone
    async with app.store.reading() as tx:
        got = await tx.get_outbox(planted.id)
        audit = await tx.list_audit(newest=True, limit=5)
    assert got is not None and got.status == OutboxStatus.FAILED
    assert got.last_error == "refused: token row failed its integrity check"
    refused = [e for e in audit if e.action == "token_row_refused"]
    assert refused and refused[0].detail["reason"] == "row_mac"


async def test_an_outbox_row_to_another_address_is_refused_even_with_the_row_untouched(
    app: App, backend: MemoryBackend
) -> None:
    request_id, _ = await _reset(app, backend)
    async with app.store.reading() as tx:
        [row] = await tx.outbox_for_send(request_id)
    planted = replace(
        row, id=new_id("msg"), message_id="<planted2@x>", recipient=MALLORY, status=OutboxStatus.PENDING,
        attempts=0, lease_owner=None, lease_until=None,
    )  # fmt: skip
    async with app.store.transaction() as tx:
        await tx.insert_outbox(planted)
    sent_before = len(backend.sent)
    await app.dispatcher.run_once()
    assert len(backend.sent) == sent_before
    async with app.store.reading() as tx:
        got = await tx.get_outbox(planted.id)
    assert got is not None and got.status == OutboxStatus.FAILED


@pytest.mark.parametrize(
    ("column", "value"), [("user_id", "u-admin"), ("email", MALLORY), ("mac", None), ("expires_at", 4102444800.0)]
)
async def test_verify_and_consume_refuse_an_edited_row(
    app: App, backend: MemoryBackend, settings: Settings, column: str, value: Any
) -> None:
    request_id, token = await _reset(app, backend)
    assert (await app.service.verify_reset_token(token)).valid
    assert _sql(settings, f"UPDATE tokens SET {column} = ? WHERE send_id = ?", value, request_id)
    verified = await app.service.verify_reset_token(token)
    assert not verified.valid and verified.user_id is None
    assert not (await app.service.consume_reset_token(token)).consumed
    async with app.store.reading() as tx:
        audit = await tx.list_audit(newest=True, limit=2)
        row = await tx.get_token_for_send(request_id)
    assert [e.detail["reason"] for e in audit] == ["row_mac", "row_mac"]
    assert row is not None and row.consumed_at is None


async def test_a_report_on_an_edited_row_revokes_but_counts_against_no_one(
    app: App, backend: MemoryBackend, settings: Settings
) -> None:
    request_id, token = await _reset(app, backend)
    _sql(settings, "UPDATE tokens SET email = 'victim@example.com', user_id = 'u-victim' WHERE send_id = ?", request_id)
    result = await app.service.report_unrequested_reset(token)
    assert result.revoked and not result.reported
    async with app.store.reading() as tx:
        reports = await tx.list_events(
            mailbox="victim@example.com", user_id="u-victim", event_types=("reset_reported_unrequested",)
        )
    assert reports == []


async def test_rows_from_before_the_upgrade_are_sealed_at_start(
    settings: Settings, clock: FakeClock, backend: MemoryBackend
) -> None:
    async with build_app(settings, clock=clock, backend=backend) as app:
        request_id, token = await _reset(app, backend)
    _sql(settings, "UPDATE tokens SET mac = NULL WHERE send_id = ?", request_id)  # as version 4 wrote it
    async with build_app(settings, clock=clock, backend=backend) as app:
        assert (await app.service.verify_reset_token(token)).valid  # the link mailed before still works
        _sql(settings, "UPDATE tokens SET mac = NULL WHERE send_id = ?", request_id)  # cleared after the start
        assert not (await app.service.verify_reset_token(token)).valid


# --------------------------------------------------------------------------- the audit chain


def _cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("RESET_MCP_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RESET_MCP_SECRET", SECRET)
    monkeypatch.setenv("RESET_MCP_EMAIL_BACKEND", "memory")
    if settings.audit_anchor_file is not None:
        monkeypatch.setenv("RESET_MCP_AUDIT_ANCHOR_FILE", str(settings.audit_anchor_file))
    return cli_main(list(args))


@pytest.fixture
def anchored(settings_factory: Callable[..., Settings], tmp_path: Path) -> Settings:
    return settings_factory(audit_anchor_file=tmp_path / "elsewhere" / "audit.anchor")


async def _some_history(settings: Settings, clock: FakeClock) -> None:
    backend = MemoryBackend()
    async with build_app(settings, clock=clock, backend=backend) as app:
        for n in range(3):
            await app.service.request_password_reset(ResetInput(**reset_args(user_id=f"u-{n}")))
            await app.service.verify_reset_token(token_from(backend.sent[-1]))


async def test_build_app_keys_every_entry_and_anchors_each_head(anchored: Settings, clock: FakeClock) -> None:
    await _some_history(anchored, clock)
    store = await open_store(anchored.effective_database_url)
    async with store.reading() as tx:
        entries = await tx.list_audit()
    await store.aclose()
    signer = TokenSigner(SECRET)
    assert entries and all(hash_kid(e.hash) == signer.kid for e in entries)
    lines = anchored.audit_anchor_file.read_text().splitlines()  # type: ignore[union-attr]
    assert lines[-1] == f"{entries[-1].seq} {entries[-1].hash}"
    assert verify_chain(entries, signer.audit_ring).ok
    assert not verify_chain(entries).ok  # without the ring a keyed chain cannot pass


async def _first_entry(settings: Settings) -> AuditEntry:
    store = await open_store(settings.effective_database_url)
    try:
        async with store.reading() as tx:
            return (await tx.list_audit(limit=1))[0]
    finally:
        await store.aclose()


def test_audit_verify_finds_a_cut_off_tail_and_a_rehashed_chain(
    anchored: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    anyio.run(_some_history, anchored, clock)
    assert _cli(anchored, monkeypatch, "audit", "verify") == 0
    out = capsys.readouterr().out
    assert "keyed entries checked with the key ring" in out and "all present" in out

    # The writer deletes the newest entries: the chain that is left still links up.
    _sql(anchored, "DELETE FROM audit WHERE seq > 2")
    assert _cli(anchored, monkeypatch, "audit", "verify") == 1
    assert "entries were deleted" in capsys.readouterr().err

    # And without the anchor file, re-hashing an edited entry (SHA-256, no key) is found.
    monkeypatch.delenv("RESET_MCP_AUDIT_ANCHOR_FILE")
    unanchored = anchored.model_copy(update={"audit_anchor_file": None})
    first = anyio.run(_first_entry, anchored)
    forged = entry_hash(first.prev_hash, 1, first.at, "cli:nobody", first.action, first.subject, first.detail)
    _sql(anchored, "UPDATE audit SET actor = 'cli:nobody', hash = ? WHERE seq = 1", forged)
    _sql(anchored, "UPDATE audit SET prev_hash = ? WHERE seq = 2", forged)
    assert _cli(unanchored, monkeypatch, "audit", "verify") == 1
    assert "audit log BROKEN at entry 2: entry 2 was altered" in capsys.readouterr().err


async def test_a_version_1_chain_is_keyed_from_the_first_start_after_the_upgrade(
    settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database as version 5 left it: an unkeyed chain.
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS[:5])
    store = await open_store(settings.effective_database_url)
    async with store.transaction() as tx:
        for n in range(3):
            await tx.append_audit(at=clock.now(), actor="stdio", action="decision", subject=f"req_{n}", detail={})
    await store.aclose()
    monkeypatch.setattr(sqlite_store, "MIGRATIONS", MIGRATIONS)
    async with build_app(settings, clock=clock, backend=MemoryBackend()) as app:
        report = await app.service.admin.verify_audit()
        async with app.store.reading() as tx:
            entries = await tx.list_audit()
    assert report.ok and report.keyed == 1
    assert entries[-1].action == "audit_key_changed" and entries[-1].detail == {"from": "sha256", "to": app.signer.kid}


def test_metrics_show_the_audit_head(tmp_path: Path) -> None:
    from tests.test_http import make_settings

    settings = make_settings(tmp_path / "data", audit_anchor_file=tmp_path / "anchor")
    with running_server(settings, {"app": ["redeem"]}) as srv:
        refused = httpx.post(f"{srv.url}/v1/tokens/verify", json={"token": "a.b.c"}, headers=srv.auth("app"))
        assert refused.json()["valid"] is False  # an audit entry, anchored
        metrics = httpx.get(f"{srv.url}/metrics").text
    last = Path(tmp_path / "anchor").read_text().splitlines()[-1]
    seq, digest = last.split()
    assert f"reset_mcp_audit_head_seq {float(seq)}" in metrics
    assert f'reset_mcp_audit_head_info{{hash="{digest}"}} 1.0' in metrics
    assert "reset_mcp_audit_anchor_write_failures 0.0" in metrics


async def test_an_outbox_row_payload_is_unchanged_by_the_mac(app: App, backend: MemoryBackend) -> None:
    request_id, _ = await _reset(app, backend)
    async with app.store.reading() as tx:
        rows: list[OutboxRow] = await tx.outbox_for_send(request_id)
    assert "mac" not in rows[0].payload
