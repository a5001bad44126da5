"""The keyed audit chain and its anchor outside the database (issue 22, item 7).

A database writer could delete, edit and re-hash rows of the SHA-256 chain and it still
verified. Keyed with HMAC under a key derived from the secret, and with its head
recorded in an append-only file after each commit, each of those is found; on SQLite
and on PostgreSQL."""

from __future__ import annotations

import asyncio
import fcntl
import hmac
import json
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pg import fresh_schema_url, pg_database_fixture

from reset_mcp import audit_anchor
from reset_mcp.audit import GENESIS, AuditKey, entry_hash, hash_kid, keyed_entry_hash, verify_chain
from reset_mcp.audit_anchor import AuditAnchor
from reset_mcp.audit_head import REKEY_ACTION, chain_head, rekey_head
from reset_mcp.errors import ConfigError
from reset_mcp.store import Store, open_store
from reset_mcp.store.records import AuditEntry
from reset_mcp.tokens import TokenSigner

NOW = datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)
OLD, NEW = "old-secret-0123456789-abcdefghijklmnopqrstuvwxyz", "new-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
pg_url = pg_database_fixture()


def audit_key(signer: TokenSigner) -> AuditKey:
    key = AuditKey.current(signer)
    assert key.kid == signer.kid and len(key.key) == 32
    return key


SIGNER = TokenSigner(NEW)
KEY = audit_key(SIGNER)
RING = SIGNER.audit_ring


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return fresh_schema_url(request.getfixturevalue("pg_url"))


@pytest.fixture
def anchor_path(tmp_path: Path) -> Path:
    return tmp_path / "anchor" / "audit.anchor"


@pytest.fixture
async def store(store_url: str, anchor_path: Path) -> AsyncIterator[Store]:
    s = await open_store(store_url, audit_key=KEY, anchor_file=anchor_path)
    yield s
    await s.aclose()


async def append(store: Store, n: int, *, start: int = 0) -> None:
    for i in range(start, start + n):  # one commit each, as the service makes them
        async with store.transaction() as tx:
            await tx.append_audit(
                at=NOW + timedelta(seconds=i), actor="agent", action=f"a{i}", subject=f"req_{i}", detail={"i": i}
            )


async def entries(store: Store) -> list[AuditEntry]:
    async with store.reading() as tx:
        return await tx.list_audit(limit=10_000)


async def sql(store: Store, statement: str, *args: object) -> None:
    async with store.transaction() as tx:
        await tx._exec(statement, args)  # type: ignore[attr-defined]


def anchors(path: Path) -> dict[int, str]:
    log = audit_anchor.read(path)
    assert log.problem is None
    return dict(log.heads)


async def rehash_from(store: Store, chain: list[AuditEntry], first: int, make: object = None) -> None:
    """What a writer without the key does: rewrite every hash from entry `first` on with
    plain SHA-256 (or `make`), so each row links to the one before it again."""
    prev = chain[first - 2].hash if first > 1 else GENESIS
    for entry in chain[first - 1 :]:
        fields = (prev, entry.seq, entry.at, entry.actor, entry.action, entry.subject, entry.detail)
        digest = make(*fields) if callable(make) else entry_hash(*fields)
        await sql(store, "UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", prev, digest, entry.seq)
        prev = digest


# --------------------------------------------------------------------------- intact


async def test_a_keyed_anchored_chain_verifies(store: Store, anchor_path: Path) -> None:
    await append(store, 6)
    chain = await entries(store)
    assert all(hash_kid(e.hash) == KEY.kid for e in chain)
    report = verify_chain(chain, RING, anchors=anchors(anchor_path))
    assert report.ok and report.checked == report.keyed == 6 and report.unchecked_through == 0
    # One line a commit, after it; the file is private whatever the umask.
    assert anchors(anchor_path) == {e.seq: e.hash for e in chain}
    assert stat.S_IMODE(anchor_path.stat().st_mode) == 0o600
    async with store.reading() as tx:
        assert await chain_head(tx) == (6, chain[-1].hash)


async def test_the_key_matters_and_a_keyed_chain_needs_the_ring(store: Store) -> None:
    await append(store, 3)
    chain = await entries(store)
    report = verify_chain(chain)
    assert not report.ok and report.problem == "entry 1 is keyed: check the chain with the key ring"
    other = TokenSigner(OLD)
    report = verify_chain(chain, {KEY.kid: other.audit_ring[other.kid]})  # the right id, the wrong key
    assert not report.ok and report.problem == "entry 1 was altered"


# --------------------------------------------------------------------------- tampering


async def test_deleting_the_tail_is_found_by_the_anchor(store: Store, anchor_path: Path) -> None:
    await append(store, 8)
    await sql(store, "DELETE FROM audit WHERE seq > ?", 5)
    chain = await entries(store)
    assert verify_chain(chain, RING).ok  # a shorter chain is a valid chain: hence the anchor
    report = verify_chain(chain, RING, anchors=anchors(anchor_path))
    assert not report.ok and report.bad_seq == 6
    assert report.problem == "the anchor file records entry 8 but the chain ends at 5: entries were deleted"


async def test_deleting_everything_is_found_by_the_anchor(store: Store, anchor_path: Path) -> None:
    await append(store, 3)
    await sql(store, "DELETE FROM audit")
    report = verify_chain(await entries(store), RING, anchors=anchors(anchor_path))
    assert not report.ok and "records entry 3 but the chain ends at 0" in (report.problem or "")


async def test_an_edit_rehashed_with_plain_sha256_is_found(store: Store) -> None:
    await append(store, 6)
    chain = await entries(store)
    await sql(store, "UPDATE audit SET actor = 'cli:mallory' WHERE seq = 3")
    edited = [*chain[:2], replace(chain[2], actor="cli:mallory"), *chain[3:]]
    await rehash_from(store, edited, 3)
    report = verify_chain(await entries(store), RING)
    assert not report.ok and report.bad_seq == 3
    assert report.problem == "entry 3 is not keyed, but an earlier entry is (hashed again without the key)"


async def test_the_whole_chain_rehashed_with_plain_sha256_is_found(store: Store, anchor_path: Path) -> None:
    # Every entry re-hashed from the first: no keyed entry is left to object, but a ring
    # holder expects a keyed head, and the anchor file still holds the real hashes.
    await append(store, 4)
    await rehash_from(store, await entries(store), 1)
    tampered = await entries(store)
    assert verify_chain(tampered).ok  # the old check alone is fooled
    report = verify_chain(tampered, RING)
    assert not report.ok and report.problem == "the newest entry (4) is not keyed"
    report = verify_chain(tampered, RING, anchors=anchors(anchor_path))
    assert not report.ok and report.problem == "entry 1 is not the one the anchor file recorded"


async def test_an_edit_rehashed_under_a_guessed_key_is_found(store: Store) -> None:
    await append(store, 5)
    chain = await entries(store)
    guessed = AuditKey(KEY.kid, b"\x00" * 32)
    edited = [*chain[:3], replace(chain[3], subject="req_other"), chain[4]]
    await sql(store, "UPDATE audit SET subject = 'req_other' WHERE seq = 4")
    await rehash_from(store, edited, 4, lambda *f: keyed_entry_hash(guessed, *f))
    report = verify_chain(await entries(store), RING)
    assert not report.ok and report.bad_seq == 4 and report.problem == "entry 4 was altered"


async def test_a_deleted_and_relinked_middle_row_is_found(store: Store) -> None:
    await append(store, 5)
    chain = await entries(store)
    await sql(store, "DELETE FROM audit WHERE seq = 3")
    report = verify_chain(await entries(store), RING)
    assert not report.ok and report.problem == "entry 3 is missing (next is 4)"
    await sql(store, "UPDATE audit SET seq = 3, prev_hash = ? WHERE seq = 4", chain[1].hash)
    report = verify_chain(await entries(store), RING)
    assert not report.ok and report.bad_seq == 3 and report.problem == "entry 3 was altered"


# --------------------------------------------------------------------------- upgrade, rotation


async def test_an_old_chain_continues_keyed_and_its_past_is_pinned(store_url: str, anchor_path: Path) -> None:
    legacy = await open_store(store_url)  # what the code before this change wrote
    await append(legacy, 4)
    await legacy.aclose()
    store = await open_store(store_url, audit_key=KEY, anchor_file=anchor_path)
    try:
        assert verify_chain(await entries(store)).ok
        # Until a keyed entry is written, a ring holder cannot tell this from a downgrade:
        # the start-up re-key writes one, whose MAC covers the old head.
        assert not verify_chain(await entries(store), RING).ok
        async with store.transaction() as tx:
            marker = await rekey_head(tx, KEY, NOW)
            assert await rekey_head(tx, KEY, NOW) is None  # once
        assert marker is not None and marker.action == REKEY_ACTION and marker.seq == 5
        assert marker.detail == {"from": "sha256", "to": KEY.kid}
        await append(store, 2, start=10)
        chain = await entries(store)
        report = verify_chain(chain, RING, anchors=anchors(anchor_path))
        assert report.ok and report.checked == 7 and report.keyed == 3

        # Editing an old, unkeyed entry (and re-hashing the unkeyed ones after it) breaks
        # the first keyed entry's link, which only the key could re-make.
        await sql(store, "UPDATE audit SET detail = ? WHERE seq = 2", json.dumps({"i": 99}))
        edited = [chain[0], replace(chain[1], detail={"i": 99}), *chain[2:4]]
        await rehash_from(store, edited, 2)
        report = verify_chain(await entries(store), RING)
        assert not report.ok and report.bad_seq == 5 and report.problem == "entry 5 does not link to entry 4"
    finally:
        await store.aclose()


async def test_rotation_old_entries_verify_while_the_old_secret_is_a_fallback(
    store_url: str, anchor_path: Path
) -> None:
    old_signer = TokenSigner(OLD)
    before = await open_store(store_url, audit_key=audit_key(old_signer), anchor_file=anchor_path)
    await append(before, 3)
    await before.aclose()
    rotated = TokenSigner(NEW, [OLD])
    after = await open_store(store_url, audit_key=audit_key(rotated), anchor_file=anchor_path)
    try:
        async with after.transaction() as tx:
            marker = await rekey_head(tx, audit_key(rotated), NOW)
        assert marker is not None and marker.detail == {"from": old_signer.kid, "to": rotated.kid}
        chain = await entries(after)
        assert {hash_kid(e.hash) for e in chain} == {old_signer.kid, rotated.kid}
        report = verify_chain(chain, rotated.audit_ring, anchors=anchors(anchor_path))
        assert report.ok and report.keyed == 4 and report.unchecked_through == 0
        # The old secret retired: its entries' links still hold (pinned by the first new
        # entry) but their contents cannot be checked, and the report says how far.
        report = verify_chain(chain, TokenSigner(NEW).audit_ring)
        assert report.ok and report.keyed == 1 and report.unchecked_through == 3
        # Only the old key: the newest entry cannot be checked, which is never "intact".
        report = verify_chain(chain, old_signer.audit_ring)
        assert not report.ok
        assert report.problem == f"the newest entry (4) is keyed under key id {rotated.kid}, not in the ring"
    finally:
        await after.aclose()


async def test_rekey_head_on_an_empty_log_writes_nothing(store: Store) -> None:
    async with store.transaction() as tx:
        assert await rekey_head(tx, KEY, NOW) is None
        assert await chain_head(tx) == (0, GENESIS)


# --------------------------------------------------------------------------- the anchor's writes


async def test_a_rolled_back_entry_is_never_anchored(store: Store, anchor_path: Path) -> None:
    # Its seq is reused by the next entry: anchored, it would look like a rewrite.
    await append(store, 2)
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.append_audit(at=NOW, actor="x", action="rolled_back", subject="s", detail={})
            raise RuntimeError("boom")
    await append(store, 1, start=5)
    chain = await entries(store)
    assert [e.action for e in chain] == ["a0", "a1", "a5"]
    assert verify_chain(chain, RING, anchors=anchors(anchor_path)).ok
    assert sorted(anchors(anchor_path)) == [1, 2, 3]


async def test_concurrent_commits_anchor_what_committed(store: Store, anchor_path: Path) -> None:
    # SQLite commits concurrent bodies in groups (one anchor line a group, its newest
    # entry); PostgreSQL on separate connections (one line each). A failing body's entry
    # is rolled back and must not be anchored either way.
    async def one(i: int) -> None:
        async with store.transaction() as tx:
            await tx.append_audit(at=NOW, actor="agent", action=f"c{i}", subject="s", detail={"i": i})
            if i % 3 == 0:
                raise RuntimeError(f"body {i}")

    results = await asyncio.gather(*(one(i) for i in range(24)), return_exceptions=True)
    assert sum(isinstance(r, RuntimeError) for r in results) == 8
    chain = await entries(store)
    assert len(chain) == 16
    heads = anchors(anchor_path)
    assert max(heads) == 16
    assert verify_chain(chain, RING, anchors=heads).ok


async def test_a_failed_anchor_write_is_logged_and_counted_not_raised(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    anchor = store.anchor  # type: ignore[attr-defined]
    os.close(anchor._fd)  # the file is gone from under it (a full or failed disk looks alike)
    with caplog.at_level("ERROR", logger="reset_mcp.audit"):
        await append(store, 1)  # the transaction still commits
    assert len(await entries(store)) == 1
    assert anchor.failures == 1
    assert "could not record entry 1" in caplog.text
    anchor._fd = None  # already closed


def test_anchor_file_is_private_append_only_and_shared_safely(tmp_path: Path) -> None:
    path = tmp_path / "a.anchor"
    path.write_text("1 " + "a" * 64 + "\n", encoding="ascii")
    path.chmod(0o644)  # made before, world-readable: tightened on open
    old_umask = os.umask(0o022)
    try:
        first, second = AuditAnchor.open(path), AuditAnchor.open(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert fcntl.fcntl(first._fd, fcntl.F_GETFL) & os.O_APPEND  # type: ignore[arg-type]
    for seq in range(2, 202):
        (first if seq % 2 else second).record(seq, f"v2:{'0' * 16}:{seq:064x}")
    first.close()
    second.close()
    log = audit_anchor.read(path)
    assert log.problem is None and sorted(log.heads) == list(range(1, 202))  # nothing overwritten


def test_reading_an_anchor_file(tmp_path: Path) -> None:
    path = tmp_path / "a.anchor"
    h = "v2:0123456789abcdef:" + "a" * 64
    path.write_bytes(f"1 {h}\n2 {h}\n3 v2:01".encode())  # the last write was cut short by a crash
    assert audit_anchor.read(path) == audit_anchor.AnchorLog({1: h, 2: h})
    path.write_bytes(f"1 {h}\ngarbage\n3 {h}\n".encode())
    assert audit_anchor.read(path).problem == f"the anchor file {path} is damaged at line 2"
    path.write_bytes(f"1 {h}\n1 {h.replace('a', 'b')}\n".encode())
    assert audit_anchor.read(path).problem == "the anchor file records two different hashes for entry 1"
    assert "does not exist" in (audit_anchor.read(tmp_path / "none").problem or "")


def test_an_anchor_path_that_cannot_be_used_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^RESET_MCP_AUDIT_ANCHOR_FILE: /dev/null is not a regular file$"):
        AuditAnchor.open("/dev/null")
    with pytest.raises(ConfigError, match=r"^RESET_MCP_AUDIT_ANCHOR_FILE: cannot open .*: Is a directory$"):
        AuditAnchor.open(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"^RESET_MCP_AUDIT_ANCHOR_FILE: cannot open "):  # and no hang
        AuditAnchor.open(fifo)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"^RESET_MCP_AUDIT_ANCHOR_FILE: cannot open "):
        AuditAnchor.open(blocker / "below" / "a.anchor")


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=80), st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=4))
def test_the_prepared_key_macs_as_hmac_digest(raw: bytes, detail: dict[str, str]) -> None:
    # AuditKey keeps an HMAC object keyed once; an entry's MAC must be hmac.digest's, and
    # hashing leaves the keyed object as it was.
    from reset_mcp import audit

    key = AuditKey("0123456789abcdef", raw)
    message = audit._message(GENESIS, 1, datetime(2026, 1, 1, tzinfo=UTC), "a", "b", "c", detail, None)
    expected = f"v2:0123456789abcdef:{hmac.digest(raw, message, 'sha256').hex()}"
    for _ in range(2):
        assert keyed_entry_hash(key, GENESIS, 1, datetime(2026, 1, 1, tzinfo=UTC), "a", "b", "c", detail) == expected
