"""The reset workflow in the domain, on a fake clock: expiry, revocation, races, secrecy."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest

from reset_mcp.app import App
from reset_mcp.clock import FakeClock
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.tokens import jti_hash
from tests.conftest import CHROME_UA, token_from


def _inp(**over: str) -> ResetInput:
    base = {"email": "alice@example.com", "user_id": "u-1", "ip": "198.51.100.7", "user_agent": CHROME_UA}
    base.update(over)
    return ResetInput(**base)  # type: ignore[arg-type]


async def _audit_reasons(app: App, action: str) -> list[str]:
    async with app.store.transaction() as tx:
        return [e.detail.get("reason", "") for e in await tx.list_audit(limit=1000) if e.action == action]


async def test_token_expires_on_the_clock(app: App, backend: MemoryBackend, clock: FakeClock) -> None:
    result = await app.service.request_password_reset(_inp())
    assert result.expires_at is not None
    assert (result.expires_at - clock.now()).total_seconds() == pytest.approx(15 * 60, abs=1)
    token = token_from(backend.sent[0])
    clock.advance(minutes=14, seconds=58)
    assert (await app.service.verify_reset_token(token)).valid
    clock.advance(seconds=2)
    answer = await app.service.verify_reset_token(token)
    assert not answer.valid and answer.reason == "This reset link is invalid or has expired."
    assert not (await app.service.consume_reset_token(token)).consumed
    assert "expired" in await _audit_reasons(app, "verify_refused")


async def test_a_new_request_revokes_the_older_link(app: App, backend: MemoryBackend) -> None:
    await app.service.request_password_reset(_inp())
    await app.service.request_password_reset(_inp())
    first, second = (token_from(m) for m in backend.sent)
    assert first != second
    assert not (await app.service.verify_reset_token(first)).valid
    assert (await app.service.verify_reset_token(second)).valid
    assert "revoked" in await _audit_reasons(app, "verify_refused")


async def test_consume_revokes_the_users_other_links(app: App, backend: MemoryBackend) -> None:
    # Two accounts' links; consuming one leaves the other account's link alone.
    await app.service.request_password_reset(_inp())
    await app.service.request_password_reset(_inp(email="bob@example.com", user_id="u-2"))
    alice, bob = (token_from(m) for m in backend.sent)
    assert (await app.service.consume_reset_token(alice)).consumed
    assert (await app.service.verify_reset_token(bob)).valid
    assert "consumed" not in await _audit_reasons(app, "verify_refused")
    assert not (await app.service.verify_reset_token(alice)).valid
    assert "consumed" in await _audit_reasons(app, "verify_refused")


async def test_fifty_racing_consumes_one_winner(app: App, backend: MemoryBackend) -> None:
    await app.service.request_password_reset(_inp())
    token = token_from(backend.sent[0])
    results: list[bool] = []

    async def consume() -> None:
        results.append((await app.service.consume_reset_token(token)).consumed)

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(consume)
    assert results.count(True) == 1 and len(results) == 50
    notices = [m for m in backend.sent if m.kind == "password_changed"]
    assert len(notices) == 1


async def test_precise_reasons_go_to_the_audit_only(app: App, backend: MemoryBackend) -> None:
    await app.service.request_password_reset(_inp())
    token = token_from(backend.sent[0])
    head, payload, sig = token.split(".")
    tampered = f"{head}.{payload}.{sig[:-2]}AA"
    answers = [await app.service.verify_reset_token(t) for t in (tampered, "garbage")]
    assert {a.reason for a in answers} == {"This reset link is invalid or has expired."}
    reasons = await _audit_reasons(app, "verify_refused")
    assert "bad_signature" in reasons and "malformed" in reasons


async def test_no_plaintext_token_in_store_logs_or_results(
    app: App, backend: MemoryBackend, settings: object, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await app.service.request_password_reset(_inp())
    token = token_from(backend.sent[0])
    signer = app.signer
    jti = signer.decode(token, app.clock.now()).claims.jti  # type: ignore[union-attr]
    results = [result, await app.service.verify_reset_token(token), await app.service.consume_reset_token(token)]
    db_file = Path(app.settings.data_dir) / "reset-mcp.db"
    raw = b"".join(p.read_bytes() for p in db_file.parent.glob("reset-mcp.db*"))
    for secret in (token, jti, token.split(".")[2]):
        assert secret.encode() not in raw
        assert secret not in caplog.text
        assert all(secret not in r.model_dump_json() for r in results)
    # What the store keeps is the hash of the jti.
    async with app.store.transaction() as tx:
        assert await tx.get_token(jti_hash(jti)) is not None
        rows = await tx.list_outbox(None, 10)
    assert all("token" not in str(r.payload).lower() or "claims" in r.payload for r in rows)
    assert all(jti not in str(r.payload) for r in rows)


async def test_reset_link_comes_only_from_the_configured_template(app: App, backend: MemoryBackend) -> None:
    await app.service.request_password_reset(_inp())
    text = backend.sent[0].text
    assert "http://localhost:8000/reset?token=" in text


async def test_unknown_and_known_accounts_get_the_same_answer_shape(app: App) -> None:
    # reset-mcp has no user table: the app decides what an account is, and every request
    # answers with the same fields whatever the address.
    a = await app.service.request_password_reset(_inp())
    b = await app.service.request_password_reset(_inp(email="nobody@example.net", user_id="ghost"))
    assert a.model_dump().keys() == b.model_dump().keys() and a.status == b.status == "sent"


async def test_failed_checks_are_throttled_after_100_in_a_row(
    app: App, backend: MemoryBackend, clock: FakeClock
) -> None:
    from reset_mcp.errors import TooManyFailuresError

    await app.service.request_password_reset(_inp())
    good = token_from(backend.sent[0])
    # A caller whose client is unknown (stdio here) has NIST's ceiling; each bad token is
    # another (one token string alone is refused after 10 failures).
    for n in range(99):
        assert not (await app.service.verify_reset_token(f"bad.token.{n}")).valid
    assert (await app.service.verify_reset_token(good)).valid  # a success resets the count
    for n in range(100):
        await app.service.verify_reset_token(f"bad.token.x{n}")
    with pytest.raises(TooManyFailuresError) as info:
        await app.service.verify_reset_token(good)
    assert 0 < info.value.retry_after <= 15 * 60 + 1
    clock.advance(minutes=15, seconds=1)  # the cooldown (the first link expired meanwhile)
    await app.service.request_password_reset(_inp())
    assert (await app.service.verify_reset_token(token_from(backend.sent[-1]))).valid
