"""Reliable delivery with the in-memory backend and the fake clock: backoff with jitter,
Retry-After, giving up, permanent failures, expired and revoked links, crash recovery,
stable Message-ID and idempotency key, no token in the outbox; and `reset-mcp outbox`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest

from reset_mcp.app import App, app_with_jobs, build_app
from reset_mcp.clock import FakeClock
from reset_mcp.compose import RequestContext
from reset_mcp.config import Settings
from reset_mcp.emails.kind import dump_context
from reset_mcp.errors import PermanentDeliveryError, TransientDeliveryError
from reset_mcp.flows.jobs import JobRunner
from reset_mcp.flows.reset import ResetInput
from reset_mcp.ids import new_id
from reset_mcp.mail import DeliveryReceipt, OutgoingEmail
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.models import ResetRequestResult
from reset_mcp.outbox.dispatcher import DeliveryOutcome, Dispatcher, RetryPolicy
from reset_mcp.outbox.release import Releaser
from reset_mcp.store.records import OutboxRow, SendRecord
from tests.conftest import SECRET, client_for, reset_args, text_of_eml, token_from, token_from_text
from tests.smtpd_sink import HOST, SmtpSink

REPO = Path(__file__).resolve().parents[1]
BASE, CEILING, MAX_ATTEMPTS = 10.0, 60.0, 4


class ScriptedBackend(MemoryBackend):
    """MemoryBackend that also records every attempt, failed or not, and can be slowed
    down or broken per recipient."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts: list[OutgoingEmail] = []
        self.delay_for: dict[str, float] = {}
        self.raise_for: dict[str, Exception] = {}

    async def send(self, email: OutgoingEmail) -> DeliveryReceipt:
        self.attempts.append(email)
        if email.to in self.delay_for:
            await anyio.sleep(self.delay_for[email.to])
        if email.to in self.raise_for:
            raise self.raise_for.pop(email.to)
        return await super().send(email)


@pytest.fixture
def backend() -> ScriptedBackend:
    return ScriptedBackend()


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(
        delivery_backoff_seconds=BASE, delivery_backoff_max_seconds=CEILING, delivery_max_attempts=MAX_ATTEMPTS
    )


async def request(app: App, **over: Any) -> ResetRequestResult:
    return await app.service.request_password_reset(ResetInput(**reset_args(**over)))


async def rows_of(app: App, request_id: str) -> list[OutboxRow]:
    async with app.store.transaction() as tx:
        return await tx.outbox_for_send(request_id)


async def row_of(app: App, request_id: str) -> OutboxRow:
    [row] = await rows_of(app, request_id)
    return row


async def send_status(app: App, request_id: str) -> str:
    async with app.store.transaction() as tx:
        send = await tx.get_send(request_id)
    assert send is not None
    return send.status


def transient(reason: str = "SMTP 451 4.3.0 try again later", **kw: Any) -> TransientDeliveryError:
    return TransientDeliveryError(reason, **kw)


# The backoff policy ----------------------------------------------------------------------
def test_backoff_doubles_with_equal_jitter_under_a_ceiling() -> None:
    policy = RetryPolicy(max_attempts=8, base_seconds=BASE, max_seconds=CEILING)
    for attempts in range(1, 9):
        step = min(CEILING, BASE * 2 ** (attempts - 1))
        delays = [policy.delay(attempts, None) for _ in range(300)]
        assert all(step / 2 <= d <= step for d in delays), (attempts, min(delays), max(delays))
        assert max(delays) - min(delays) > step / 4  # jittered, not one fixed value
    assert all(BASE / 2 <= policy.delay(0, None) <= BASE for _ in range(50))


def test_retry_after_is_a_floor_capped_at_an_hour() -> None:
    policy = RetryPolicy(max_attempts=8, base_seconds=BASE, max_seconds=CEILING)
    assert policy.delay(1, 120.0) == 120.0
    assert all(BASE / 2 <= policy.delay(1, 1.0) <= BASE for _ in range(50))  # shorter than the backoff: backoff
    assert policy.delay(1, 10**7) == 3600.0


# Transient failures, retried by the worker ------------------------------------------------
async def test_transient_failure_is_kept_pending_per_backoff_and_retried(
    app: App, backend: ScriptedBackend, clock: FakeClock
) -> None:
    backend.fail_next = [transient()]
    t0 = clock.now()
    async with client_for(app) as client:
        out = (await client.call_tool("request_password_reset", reset_args())).structured_content
        assert out["status"] == "queued"
        assert out["delivery"]["status"] == "pending" and "451" in out["delivery"]["error"]
        shown = (await client.call_tool("get_delivery_status", {"request_id": out["request_id"]})).structured_content
    row = await row_of(app, out["request_id"])
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "SMTP 451 4.3.0 try again later")
    assert row.lease_owner is None and row.lease_until is None
    assert t0 + timedelta(seconds=BASE / 2) <= row.next_attempt_at <= t0 + timedelta(seconds=BASE)
    assert shown["status"] == "queued" and shown["deliveries"][0]["status"] == "pending"
    assert datetime.fromisoformat(shown["deliveries"][0]["next_attempt_at"]) == row.next_attempt_at
    assert backend.sent == []

    assert await app.dispatcher.run_once() == 0  # not due yet
    clock.advance(seconds=(row.next_attempt_at - clock.now()).total_seconds() - 0.5)
    assert await app.dispatcher.run_once() == 0
    clock.advance(seconds=0.5)
    assert await app.dispatcher.run_once() == 1

    done = await row_of(app, out["request_id"])
    assert (done.status, done.attempts, done.last_error) == ("sent", 2, None)
    assert done.sent_at == clock.now()
    assert await send_status(app, out["request_id"]) == "sent"
    [mail] = backend.sent
    assert (await app.service.verify_reset_token(token_from(mail))).valid
    assert await app.dispatcher.run_once() == 0  # nothing left


async def test_each_failure_backs_off_further(app: App, backend: ScriptedBackend, clock: FakeClock) -> None:
    backend.fail_next = [transient(), transient("SMTP 421 4.7.0 closing")]
    res = await request(app)
    clock.advance(seconds=BASE)
    assert await app.dispatcher.run_once() == 1
    row = await row_of(app, res.request_id)
    assert (row.status, row.attempts, row.last_error) == ("pending", 2, "SMTP 421 4.7.0 closing")
    now = clock.now()
    assert now + timedelta(seconds=BASE) <= row.next_attempt_at <= now + timedelta(seconds=2 * BASE)


async def test_retry_after_is_honoured(app: App, backend: ScriptedBackend, clock: FakeClock) -> None:
    backend.fail_next = [transient("HTTP 429 slow down", retry_after=120)]
    t0 = clock.now()
    res = await request(app)
    row = await row_of(app, res.request_id)
    assert row.next_attempt_at == t0 + timedelta(seconds=120)
    clock.advance(seconds=119)
    assert await app.dispatcher.run_once() == 0
    clock.advance(seconds=1)
    assert await app.dispatcher.run_once() == 1
    assert (await row_of(app, res.request_id)).status == "sent" and len(backend.sent) == 1


async def test_gives_up_after_max_attempts_with_the_reason(
    app: App, backend: ScriptedBackend, clock: FakeClock
) -> None:
    backend.fail_next = [transient(f"SMTP 421 4.3.2 busy ({i})") for i in range(1, MAX_ATTEMPTS + 1)]
    res = await request(app)
    for attempt in range(2, MAX_ATTEMPTS + 1):
        clock.advance(seconds=CEILING)
        assert await app.dispatcher.run_once() == 1
        assert (await row_of(app, res.request_id)).attempts == attempt
    row = await row_of(app, res.request_id)
    assert row.status == "failed"
    assert row.last_error == f"gave up after {MAX_ATTEMPTS} attempts: SMTP 421 4.3.2 busy ({MAX_ATTEMPTS})"
    clock.advance(seconds=3600)
    assert await app.dispatcher.run_once() == 0  # never retried again
    assert len(backend.attempts) == MAX_ATTEMPTS and backend.sent == []
    async with client_for(app) as client:
        shown = (await client.call_tool("get_delivery_status", {"request_id": res.request_id})).structured_content
    assert shown["status"] == "failed" and shown["reason"] == row.last_error
    assert shown["deliveries"][0]["last_error"] == row.last_error and shown["deliveries"][0]["attempts"] == 4
    async with app.store.transaction() as tx:
        audit = await tx.list_audit(newest=True, limit=5)
    assert [e.action for e in audit if e.subject == res.request_id][-1] == "delivery_failed"


async def test_permanent_failure_fails_at_once_and_the_tools_show_the_reason(
    app: App, backend: ScriptedBackend, clock: FakeClock
) -> None:
    reason = "SMTP 550 5.1.1 <alice@example.com>: mailbox unavailable"
    backend.fail_next = [PermanentDeliveryError(reason)]
    async with client_for(app) as client:
        out = (await client.call_tool("request_password_reset", reset_args())).structured_content
        assert out["status"] == "failed" and out["delivery"]["status"] == "failed"
        assert out["delivery"]["error"] == reason
        for tool in ("get_delivery_status", "get_send_status"):
            shown = (await client.call_tool(tool, {"request_id": out["request_id"]})).structured_content
            assert shown["status"] == "failed" and shown["reason"] == reason
            [delivery] = shown["deliveries"]
            assert delivery["status"] == "failed" and delivery["last_error"] == reason
            assert delivery["attempts"] == 1 and delivery["next_attempt_at"] is None
    clock.advance(seconds=3600)
    assert await app.dispatcher.run_once() == 0
    assert len(backend.attempts) == 1 and backend.sent == []


# Links that died before delivery --------------------------------------------------------
async def test_a_reset_whose_token_expired_before_delivery_is_not_sent(
    app: App, backend: ScriptedBackend, clock: FakeClock
) -> None:
    backend.fail_next = [transient()]
    res = await request(app)
    assert res.expires_at == clock.now() + timedelta(minutes=15)
    clock.advance(minutes=15)
    assert await app.dispatcher.run_once() == 1
    row = await row_of(app, res.request_id)
    assert row.status == "expired" and "expired" in (row.last_error or "")
    assert await send_status(app, res.request_id) == "expired"
    assert len(backend.attempts) == 1 and backend.sent == []


@pytest.mark.parametrize("how", ["newer request", "revoke tool"])
async def test_a_queued_reset_whose_token_was_revoked_is_not_sent(
    app: App, backend: ScriptedBackend, clock: FakeClock, how: str
) -> None:
    backend.fail_next = [transient()]
    first = await request(app)
    if how == "newer request":
        second = await request(app)
        assert second.status == "sent"
    else:
        revoked = await app.service.revoke_reset_tokens(email=None, user_id="u-1", reason="support call")
        assert revoked.revoked == 1
    clock.advance(seconds=BASE)
    assert await app.dispatcher.run_once() == 1
    row = await row_of(app, first.request_id)
    assert row.status == "cancelled" and await send_status(app, first.request_id) == "cancelled"
    assert all(mail.message_id != row.message_id for mail in backend.sent)
    assert len(backend.sent) == (1 if how == "newer request" else 0)


async def test_a_requeued_failed_reset_whose_token_was_revoked_is_not_sent(
    app: App, backend: ScriptedBackend, clock: FakeClock
) -> None:
    # `outbox retry` resets attempts to 0; the token must still be checked before sending.
    backend.fail_next = [PermanentDeliveryError("SMTP 550 5.7.1 relay denied")]
    first = await request(app)
    assert first.status == "failed"
    second = await request(app)  # supersedes the first link
    assert second.status == "sent"
    row = await row_of(app, first.request_id)
    async with app.store.transaction() as tx:
        assert await tx.requeue_outbox(row.id, clock.now())
    assert await app.dispatcher.run_once() == 1
    assert (await row_of(app, first.request_id)).status == "cancelled"
    assert [m.message_id for m in backend.sent] == [(await row_of(app, second.request_id)).message_id]


async def test_a_requeued_failed_reset_with_a_live_token_is_delivered(
    app: App, backend: ScriptedBackend, clock: FakeClock
) -> None:
    backend.fail_next = [PermanentDeliveryError("SMTP 554 5.7.1 policy")]
    res = await request(app)
    row = await row_of(app, res.request_id)
    async with app.store.transaction() as tx:
        assert await tx.requeue_outbox(row.id, clock.now())
        assert not await tx.requeue_outbox("msg_nope", clock.now())
    assert await app.dispatcher.run_once() == 1
    done = await row_of(app, res.request_id)
    assert (done.status, done.attempts) == ("sent", 1)
    assert await send_status(app, res.request_id) == "sent"
    async with app.store.transaction() as tx:
        assert not await tx.requeue_outbox(row.id, clock.now())  # a sent row stays sent


# What stays the same across retries, and what is never stored -------------------------
async def test_message_id_idempotency_key_and_link_are_identical_across_retries(
    app: App, backend: ScriptedBackend, clock: FakeClock
) -> None:
    backend.fail_next = [transient(), transient()]
    res = await request(app)
    for _ in range(2):
        clock.advance(seconds=CEILING)
        assert await app.dispatcher.run_once() == 1
    row = await row_of(app, res.request_id)
    assert row.status == "sent" and len(backend.attempts) == 3
    assert {m.message_id for m in backend.attempts} == {row.message_id}
    assert {m.idempotency_key for m in backend.attempts} == {row.id}
    assert {m.date for m in backend.attempts} == {row.created_at}
    assert len({token_from(m) for m in backend.attempts}) == 1  # the same JWT, re-minted each time
    assert row.provider_message_id == row.message_id


def _db_bytes(settings: Settings) -> bytes:
    base = Path(settings.effective_database_url.removeprefix("sqlite:///"))
    files = [base, *(base.with_name(base.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
    assert base.exists()
    return b"".join(f.read_bytes() for f in files if f.exists())


async def test_the_database_never_holds_the_token_or_the_link(
    app: App, settings: Settings, backend: ScriptedBackend, clock: FakeClock
) -> None:
    backend.fail_next = [transient()]
    res = await request(app, name="Alice")
    row = await row_of(app, res.request_id)
    # The link a retry will send, derived the way the dispatcher does it.
    token = app.dispatcher.messages.token_for(row.send_id, row.payload["claims"])
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    signature = token.rsplit(".", 1)[1]
    assert "jti" not in row.payload["claims"] and "token" not in json.dumps(row.payload)

    def check(data: bytes) -> None:
        for secret in (token, jti, signature, "token=", settings.reset_url.split("{token}")[0]):
            assert secret.encode() not in data, f"{secret!r} found in the database"

    check(_db_bytes(settings))  # while queued
    clock.advance(seconds=CEILING)
    assert await app.dispatcher.run_once() == 1
    [mail] = backend.sent
    assert token_from(mail) == token and token in mail.text and token in mail.html
    check(_db_bytes(settings))  # and after delivery (with the WAL, before any checkpoint)


# Crash recovery --------------------------------------------------------------------------
async def test_a_row_left_sending_by_a_crashed_process_is_resumed_exactly_once(
    app: App, backend: ScriptedBackend, clock: FakeClock
) -> None:
    # Another process wrote the row leased to its own dispatcher, then died before delivering.
    dead = Dispatcher(app.store, backend, app.dispatcher.messages, clock, lease_seconds=30)
    now = clock.now()
    send = SendRecord(
        id=new_id("req"),
        kind="password_reset",
        recipient="carol@example.com",
        user_id="u-3",
        status="queued",
        reason=None,
        requested_by="stdio",
        decision="send",
        created_at=now,
        updated_at=now,
        payload={
            "to_name": "Carol",
            "context": dump_context(RequestContext(now, "203.0.113.9", "Firefox 133 on Linux", "unknown")),
        },
    )
    async with app.store.transaction() as tx:
        await tx.insert_send(send)
        released = await Releaser(dead, app.signer, 15).release(tx, send, now)
    stored = await row_of(app, send.id)
    assert (stored.status, stored.lease_owner, stored.attempts) == ("sending", released.row.lease_owner, 1)
    assert stored.lease_owner is not None and stored.lease_owner.startswith("att_")  # the row's own attempt
    assert stored.lease_until == now + timedelta(seconds=30)

    assert await app.dispatcher.run_once() == 0  # the lease still holds
    clock.advance(seconds=31)
    other = Dispatcher(app.store, backend, app.dispatcher.messages, clock)
    claimed = await gather(app.dispatcher.run_once(), other.run_once())
    assert sorted(claimed) == [0, 1]  # two live workers: exactly one takes it over
    assert await app.dispatcher.run_once() == 0 and await other.run_once() == 0

    [mail] = backend.sent
    assert mail.message_id == released.row.message_id and mail.to == "carol@example.com"
    assert (await app.service.verify_reset_token(token_from(mail))).valid
    row = await row_of(app, send.id)
    assert (row.status, row.attempts, row.lease_owner) == ("sent", 2, None)
    # The dead worker, were it to wake up, could not overwrite the outcome.
    async with app.store.transaction() as tx:
        assert not await tx.finish_outbox(row.id, stored.lease_owner, status="failed", now=clock.now(), error="late")
    assert (await row_of(app, send.id)).status == "sent"


async def gather(*coros: Any) -> list[Any]:
    results: list[Any] = [None] * len(coros)

    async def run(i: int, coro: Any) -> None:
        results[i] = await coro

    async with anyio.create_task_group() as tg:
        for i, coro in enumerate(coros):
            tg.start_soon(run, i, coro)
    return results


async def test_the_fast_path_row_is_not_claimed_by_a_worker_meanwhile(app: App, backend: ScriptedBackend) -> None:
    # Written leased to this dispatcher: a worker polling before the fast path runs leaves it alone.
    backend.delay_for["alice@example.com"] = 0.2
    async with anyio.create_task_group() as tg:
        tg.start_soon(request, app)
        await anyio.sleep(0.05)
        assert await app.dispatcher.run_once() == 0
    assert len(backend.attempts) == 1 and len(backend.sent) == 1


# A backend that breaks its contract -----------------------------------------------------
async def test_an_unexpected_backend_error_leaves_the_row_pending_not_stranded(
    app: App, backend: ScriptedBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    backend.raise_for["alice@example.com"] = RuntimeError("driver text quoting token=abc.def.ghi")
    res = await request(app)  # the tool still answers
    assert "RuntimeError" in caplog.text and "token=" not in caplog.text  # logged without its text
    assert res.status == "queued" and res.delivery is not None
    assert res.delivery.error == "unexpected error: RuntimeError"
    row = await row_of(app, res.request_id)
    assert row.status == "pending" and row.lease_owner is None
    clock.advance(seconds=BASE)
    assert await app.dispatcher.run_once() == 1
    assert (await row_of(app, res.request_id)).status == "sent"


async def test_one_rows_error_does_not_cancel_its_siblings_and_the_worker_survives(
    app: App, backend: ScriptedBackend, clock: FakeClock
) -> None:
    backend.fail_next = [transient(), transient()]
    slow = await request(app, email="slow@example.com", user_id="u-slow")
    fast = await request(app, email="fast@example.com", user_id="u-fast")
    backend.delay_for["slow@example.com"] = 0.2
    blown: list[str] = []

    async def on_delivered(row: OutboxRow, outcome: DeliveryOutcome) -> None:
        if row.recipient == "fast@example.com" and not blown:
            blown.append(row.id)
            raise RuntimeError("a hook failed")

    # The worker of a process whose observer fails on one row.
    observed = Dispatcher(app.store, backend, app.messages, clock, observers=[on_delivered])
    jobs = JobRunner(observed, app.service.approvals, app.store, clock, poll_seconds=0.01)
    clock.advance(seconds=CEILING)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(jobs.run)
            while len(backend.sent) < 2 or (await row_of(app, slow.request_id)).status != "sent":
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert blown and (await row_of(app, fast.request_id)).status == "sent"
    assert {m.to for m in backend.sent} == {"slow@example.com", "fast@example.com"}


async def test_a_graceful_stop_lets_the_worker_finish_what_it_is_sending(
    settings_factory: Callable[..., Settings],
) -> None:
    with SmtpSink() as sink:
        settings = settings_factory(
            email_backend="smtp",
            smtp_host=HOST,
            smtp_port=sink.port,
            smtp_tls="none",
            worker_poll_seconds=0.05,
            delivery_backoff_seconds=0.1,
            delivery_backoff_max_seconds=0.2,
        )
        sink.refuse("451 4.3.0 try later")
        async with app_with_jobs(settings) as app:  # what `serve` runs, on the wall clock
            res = await request(app)
            assert res.status == "queued"
            sink.refuse(None)
            sink.data_delay = 0.5  # the retry will be mid-DATA when we stop
            with anyio.fail_after(10):
                while (await row_of(app, res.request_id)).status != "sending":
                    await anyio.sleep(0.01)
        assert len(sink.raw) == 1
    async with build_app(settings, backend=MemoryBackend()) as app:
        row = await row_of(app, res.request_id)
    assert (row.status, row.attempts) == ("sent", 2)  # not left `sending` to be sent again


# reset-mcp outbox ------------------------------------------------------------------------
def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MCP_")}
    env |= {
        "PYTHONPATH": str(REPO),
        "RESET_MCP_DATA_DIR": str(data_dir),
        "RESET_MCP_SECRET": SECRET,
        "RESET_MCP_FROM_ADDRESS": "auth@acme.test",
        "RESET_MCP_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "reset_mcp", "outbox", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=data_dir.parent,
        check=False,
    )


async def test_outbox_cli_counts_list_show_and_retry_delivers(
    settings_factory: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = settings_factory(from_address="auth@acme.test")
    clock = FakeClock(datetime.now(UTC))  # the CLI runs on the wall clock
    memory = MemoryBackend()
    memory.fail_next = [PermanentDeliveryError("SMTP 550 5.1.1 no such user")]
    async with build_app(settings, clock=clock, backend=memory) as app:
        failed = await request(app)
        ok = await request(app, email="bob@example.com", user_id="u-2")
        row = await row_of(app, failed.request_id)
    assert failed.status == "failed" and ok.status == "sent"
    data = Path(settings.data_dir)

    counts = _cli(data, "counts")
    assert counts.returncode == 0, counts.stderr
    assert dict(line.split() for line in counts.stdout.splitlines()) == {
        "pending": "0",
        "sending": "0",
        "sent": "1",
        "failed": "1",
        "expired": "0",
        "cancelled": "0",
    }
    listed = _cli(data, "list", "--status", "failed")
    assert listed.returncode == 0 and listed.stdout.count("\n") == 1
    assert row.id in listed.stdout and "alice@example.com" in listed.stdout and "550 5.1.1" in listed.stdout

    shown = _cli(data, "show", row.id)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["status"] == "failed" and detail["last_error"] == "SMTP 550 5.1.1 no such user"
    assert detail["message_id"] == row.message_id and detail["send_id"] == failed.request_id
    assert "token" not in shown.stdout

    retried = _cli(data, "retry", row.id)
    assert retried.returncode == 0, retried.stderr
    assert f"{row.id} queued for delivery" in retried.stdout
    assert json.loads(_cli(data, "show", row.id).stdout)["status"] == "sent"
    [eml] = sorted((data / "outbox").glob("*.eml"))
    token = token_from_text(text_of_eml(eml))

    again = _cli(data, "retry", row.id)
    assert again.returncode == 1 and "only failed or pending" in again.stderr
    missing = _cli(data, "show", "msg_missing")
    assert missing.returncode == 1 and "no outbox row" in missing.stderr

    async with build_app(settings, clock=FakeClock(datetime.now(UTC)), backend=MemoryBackend()) as app:
        verified = await app.service.verify_reset_token(token)
        assert verified.valid and verified.email == "alice@example.com"
        assert await send_status(app, failed.request_id) == "sent"
