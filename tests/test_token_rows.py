"""Token rows carry a MAC of their identity (issue 22, item 6): it round-trips on SQLite
and PostgreSQL, any edit of a covered field breaks it, key rotation keeps it, rows from
before the upgrade are sealed once, and the checks refuse the issue's attack."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pg import fresh_schema_url, pg_database_fixture

from reset_mcp.app import App
from reset_mcp.clock import FakeClock
from reset_mcp.flows.reset import ResetInput
from reset_mcp.store import Store, open_store
from reset_mcp.store import postgres as pg_store
from reset_mcp.store import sqlite as sqlite_store
from reset_mcp.store.records import OutboxRow, TokenRecord
from reset_mcp.store.schema import MIGRATIONS
from reset_mcp.token_rows import MAX_TTL, outbox_refusal, seal_unsealed, token_refusal
from reset_mcp.tokens import TokenClaims, TokenSigner
from tests.conftest import reset_args

NOW = datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
OLD, NEW = "old-secret-0123456789-abcdefghijklmnopqrstuvwxyz", "new-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
pg_url = pg_database_fixture()


def record(signer: TokenSigner, i: int | str = 1, **over: Any) -> TokenRecord:
    """A row MACed by `signer`, unless `mac` is given (None: a row from before version 5)."""
    row = TokenRecord(f"hash_{i}", f"req_{i}", "u-1", "alice@example.com", signer.kid, NOW, NOW + 15 * MIN)
    row = replace(row, **over)
    return row if "mac" in over else replace(row, mac=signer.row_mac(row))


# --------------------------------------------------------------------------- the MAC itself


@pytest.mark.parametrize(
    "edit",
    [
        {"send_id": "req_2"},
        {"user_id": "u-2"},
        {"email": "mallory@evil.test"},
        {"expires_at": NOW + 16 * MIN},
        {"expires_at": NOW + 15 * MIN + timedelta(microseconds=1)},
        {"jti_hash": "hash_2"},
        {"mac": None},
        {"mac": ""},
    ],
)
def test_any_edit_of_a_covered_field_breaks_the_mac(edit: dict[str, Any]) -> None:
    signer = TokenSigner(NEW)
    good = record(signer)
    assert signer.row_mac_ok(good)
    assert not signer.row_mac_ok(replace(good, **edit))


def test_state_is_not_covered_so_revoking_and_consuming_keep_the_mac() -> None:
    signer = TokenSigner(NEW)
    good = record(signer)
    changed = replace(good, consumed_at=NOW, revoked_at=NOW, revoke_reason="x", issued_at=NOW - MIN)
    assert signer.row_mac_ok(changed)


def test_rotation_rows_under_an_older_secret_verify_while_it_is_a_fallback() -> None:
    old = TokenSigner(OLD)
    row = record(old)
    rotated = TokenSigner(NEW, [OLD])
    assert rotated.row_mac_ok(row)
    assert rotated.row_mac(row) == row.mac  # made under the row's own kid, not the newest
    assert not TokenSigner(NEW).row_mac_ok(row)  # fallback removed: refused (its link is dead too)
    # A MAC made under another key, or the row moved to another key id, fails.
    assert not rotated.row_mac_ok(replace(row, kid=rotated.kid))
    assert not rotated.row_mac_ok(replace(record(rotated), mac=row.mac))
    with pytest.raises(ValueError, match="not in the key ring"):
        TokenSigner(NEW).row_mac(row)


def test_the_row_mac_key_is_none_of_the_other_keys() -> None:
    signer = TokenSigner(NEW)
    row = record(signer)
    assert row.mac is not None and row.mac.startswith("v1:") and len(row.mac) == 3 + 64
    # Not the jti key, nor the signing key, nor the audit key: a MAC is no use elsewhere.
    key = signer._ring[signer.kid]
    assert len({key.row, key.jti, key.signing, key.audit}) == 4


# --------------------------------------------------------------------------- the checks


def claims_of(row: TokenRecord, **over: Any) -> TokenClaims:
    base = TokenClaims(
        jti="j", user_id=row.user_id, email=row.email, issued_at=row.issued_at, expires_at=row.expires_at, kid=row.kid
    )
    return replace(base, **over)


def test_token_refusal() -> None:
    signer = TokenSigner(NEW)
    row = record(signer)
    assert token_refusal(signer, row, claims_of(row)) is None
    assert token_refusal(signer, replace(row, mac=None), claims_of(row)) == "row_mac"
    assert token_refusal(signer, replace(row, email="mallory@evil.test"), claims_of(row)) == "row_mac"
    for over in [{"email": "mallory@evil.test"}, {"user_id": "u-9"}, {"expires_at": NOW + 60 * MIN}, {"kid": "x"}]:
        assert token_refusal(signer, row, claims_of(row, **over)) == "claims_mismatch", over


async def _issued(app: App) -> tuple[TokenRecord, OutboxRow]:
    """A reset as the server writes it: `Releaser.release` MACs the token row."""
    result = await app.service.request_password_reset(ResetInput(**reset_args()))
    async with app.store.transaction() as tx:
        token = await tx.get_token_for_send(result.request_id)
        [row] = await tx.outbox_for_send(result.request_id)
    assert token is not None and token.mac is not None and app.signer.row_mac_ok(token)
    return token, row


async def test_outbox_refusal_stops_the_revived_row_attack(app: App, clock: FakeClock) -> None:
    token, row = await _issued(app)
    signer = app.signer
    assert outbox_refusal(signer, row, token) is None

    # The attack: revive the consumed token row and queue an outbox row that
    # re-mints its link for another address. The row's MAC pins the address.
    claims = row.payload["claims"]
    planted = replace(
        row,
        id="msg_planted",
        recipient="mallory@evil.test",
        payload={**row.payload, "claims": {**claims, "email": "mallory@evil.test"}},
    )
    revived = replace(token, consumed_at=None)
    assert outbox_refusal(signer, planted, revived) == "claims_mismatch"
    # ...and pointing the token row at that address too breaks its MAC.
    assert outbox_refusal(signer, planted, replace(revived, email="mallory@evil.test")) == "row_mac"
    # Only the recipient changed (the link would still be the owner's): refused too.
    assert outbox_refusal(signer, replace(row, recipient="mallory@evil.test"), token) == "claims_mismatch"
    later = {**claims, "exp": claims["exp"] + 86_400}
    assert outbox_refusal(signer, replace(row, payload={**row.payload, "claims": later}), token) == "claims_mismatch"
    assert outbox_refusal(signer, replace(row, payload={}), token) == "claims_mismatch"
    assert outbox_refusal(signer, replace(row, send_id="req_other"), token) == "row_mac"
    assert outbox_refusal(signer, row, None) == "no_token"
    assert outbox_refusal(signer, row, replace(token, mac=None)) == "row_mac"


# --------------------------------------------------------------------------- the store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return fresh_schema_url(request.getfixturevalue("pg_url"))


@pytest.fixture
async def store(store_url: str):  # type: ignore[no-untyped-def]
    s = await open_store(store_url)
    yield s
    await s.aclose()


async def test_the_mac_round_trips(store: Store) -> None:
    signer = TokenSigner(NEW)
    row = record(signer)
    async with store.transaction() as tx:
        await tx.insert_token(row)
        await tx.insert_token(record(signer, 2, mac=None))
    async with store.reading() as tx:
        got = await tx.get_token("hash_1")
        assert got == row and got is not None and signer.row_mac_ok(got)
        assert await tx.get_token_for_send("req_1") == row
        assert (await tx.get_token("hash_2")) == replace(record(signer, 2), mac=None)
    # A writer without the secret moves the row to another address: the MAC says so.
    async with store.transaction() as tx:
        await tx._exec("UPDATE tokens SET email = 'mallory@evil.test' WHERE jti_hash = 'hash_1'")  # type: ignore[attr-defined]
        assert await tx.consume_token("hash_1", NOW)  # state changes keep working as before
    async with store.reading() as tx:
        got = await tx.get_token("hash_1")
    assert got is not None and got.mac == row.mac and not signer.row_mac_ok(got)


async def test_seal_unsealed_macs_only_live_rows_of_the_ring_once(store: Store) -> None:
    signer = TokenSigner(NEW, [OLD])
    old = TokenSigner(OLD)
    stranger = TokenSigner("other-secret-0123456789-abcdefghijklmnopqrstuvwxyz")
    legacy = {
        "live": record(signer, "live", mac=None),
        "live_old_key": record(old, "live_old_key", mac=None),
        "expired": record(signer, "expired", expires_at=NOW - MIN, mac=None),
        "consumed": record(signer, "consumed", consumed_at=NOW - MIN, mac=None),
        "revoked": record(signer, "revoked", revoked_at=NOW - MIN, mac=None),
        "far": record(signer, "far", expires_at=NOW + MAX_TTL + MIN, mac=None),
        "unknown_key": record(stranger, "unknown_key", mac=None),
    }
    sealed_already = record(signer, "sealed")
    async with store.transaction() as tx:
        for row in [*legacy.values(), sealed_already]:
            await tx.insert_token(row)
    async with store.transaction() as tx:
        assert await seal_unsealed(tx, signer, NOW, batch=1) == 2  # batches until one comes back short
        assert not await tx.seal_token("hash_sealed", "v1:" + "0" * 64)  # a MAC is never overwritten
    async with store.transaction() as tx:
        assert await seal_unsealed(tx, signer, NOW) == 0
        got = {name: await tx.get_token(f"hash_{name}") for name in legacy}
        assert await tx.get_token("hash_sealed") == sealed_already
    assert {name for name, row in got.items() if row is not None and signer.row_mac_ok(row)} == {
        "live",
        "live_old_key",
    }
    assert all(row is not None and row.mac is None for name, row in got.items() if not name.startswith("live"))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_version_4_database_upgrades_and_its_live_links_are_sealed(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        module, url = sqlite_store, f"sqlite:///{tmp_path / 'v4.db'}"
    else:
        module, url = pg_store, fresh_schema_url(request.getfixturevalue("pg_url"))
    signer = TokenSigner(NEW)
    monkeypatch.setattr(module, "MIGRATIONS", MIGRATIONS[:4])  # what version 4 shipped
    old = await open_store(url)
    async with old.transaction() as tx:  # the version 4 code wrote ten columns
        await tx._exec(  # type: ignore[attr-defined]
            "INSERT INTO tokens (jti_hash, send_id, user_id, email, kid, issued_at, expires_at) VALUES (?,?,?,?,?,?,?)",
            ("hash_1", "req_1", "u-1", "alice@example.com", signer.kid, NOW.timestamp(), (NOW + 15 * MIN).timestamp()),
        )
    await old.aclose()

    monkeypatch.setattr(module, "MIGRATIONS", MIGRATIONS)
    store = await open_store(url)
    try:
        async with store.transaction() as tx:
            before = await tx.get_token("hash_1")
            assert before is not None and before.mac is None and not signer.row_mac_ok(before)
            assert await seal_unsealed(tx, signer, NOW + 5 * MIN) == 1
        async with store.reading() as tx:
            after = await tx.get_token("hash_1")
        assert after is not None and signer.row_mac_ok(after) and replace(after, mac=None) == before
        async with store.transaction() as tx:  # new rows carry theirs from the start
            await tx.insert_token(record(signer, 2))
            assert signer.row_mac_ok(await tx.get_token("hash_2"))  # type: ignore[arg-type]
    finally:
        await store.aclose()
