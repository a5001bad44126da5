"""The fault harness itself: each sink mode does what it says, the cluster dies and comes
back with its data, the tally counts by Message-ID."""

from __future__ import annotations

import time
from email.message import EmailMessage

import aiosmtplib
import anyio
import asyncpg
import pytest

from tests.faults.pg_cluster import PgCluster
from tests.faults.sink import HOST, FaultSink
from tests.faults.tally import Tally

pytestmark = pytest.mark.slow


def message(i: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@acme.test", f"u{i}@example.com", "hi"
    msg["Message-ID"] = f"<m{i}@acme.test>"
    msg.set_content("hello\n.leading dot\n")
    return msg


async def send(sink: FaultSink, i: int, timeout: float = 5) -> None:
    await aiosmtplib.send(message(i), hostname=HOST, port=sink.port, timeout=timeout)


async def test_accept_and_delay_record_each_message_as_it_arrives(sink: FaultSink) -> None:
    await send(sink, 0)
    sink.set("delay", delay=0.6)
    started = time.monotonic()
    await send(sink, 1)
    assert time.monotonic() - started >= 0.6
    records = sink.records()
    assert [(r["message_id"], r["outcome"], r["to"]) for r in records] == [
        ("<m0@acme.test>", "accepted", ["u0@example.com"]),
        ("<m1@acme.test>", "accepted", ["u1@example.com"]),
    ]


@pytest.mark.parametrize(("reply", "error"), [("451 4.3.0 try later", "451"), ("550 5.1.1 no such user", "550")])
async def test_reply_refuses_with_the_given_code(sink: FaultSink, reply: str, error: str) -> None:
    sink.set("reply", reply=reply)
    with pytest.raises(aiosmtplib.SMTPDataError, match=error):
        await send(sink, 0)
    assert [r["outcome"] for r in sink.records()] == ["refused"]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_drop_closes_after_the_data_and_is_recorded(sink: FaultSink, pipelining: bool) -> None:
    sink.set("drop", times=1, pipelining=pipelining)
    smtp = aiosmtplib.SMTP(hostname=HOST, port=sink.port, timeout=5)
    await smtp.connect()
    assert smtp.supports_extension("pipelining") is pipelining
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await smtp.send_message(message(0))
    smtp.close()
    await send(sink, 1)  # `times=1`: the next message is accepted
    assert [(r["message_id"], r["outcome"]) for r in sink.records()] == [
        ("<m0@acme.test>", "dropped"),
        ("<m1@acme.test>", "accepted"),
    ]


async def test_hang_never_answers(sink: FaultSink) -> None:
    sink.set("hang")
    with anyio.fail_after(5), pytest.raises(aiosmtplib.SMTPTimeoutError):
        await send(sink, 0, timeout=0.5)
    assert [r["outcome"] for r in sink.records()] == ["hung"]


async def test_a_client_gone_before_the_delayed_250_is_not_counted_delivered(sink: FaultSink) -> None:
    sink.set("delay", delay=1.0)
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        await send(sink, 0, timeout=0.3)
    with anyio.fail_after(5):
        while sink.records()[0]["outcome"] == "pending":
            await anyio.sleep(0.05)
    [record] = sink.records()
    assert record["outcome"] == "abandoned"
    assert Tally.of(["<m0@acme.test>"], [record]).delivered == 0


async def test_records_survive_a_killed_sink(sink: FaultSink) -> None:
    await send(sink, 0)
    sink.kill()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await send(sink, 1)
    sink.start()  # same port, same record file
    await send(sink, 2)
    assert [r["message_id"] for r in sink.records()] == ["<m0@acme.test>", "<m2@acme.test>"]


def test_tally_counts_by_message_id() -> None:
    records = [
        {"message_id": "<a>", "outcome": "accepted"},
        {"message_id": "<b>", "outcome": "dropped"},
        {"message_id": "<b>", "outcome": "accepted"},
        {"message_id": "<c>", "outcome": "accepted"},
        {"message_id": "<c>", "outcome": "accepted"},
        {"message_id": "<x>", "outcome": "accepted"},
        {"message_id": "<d>", "outcome": "hung"},
        {"message_id": "<e>", "outcome": "refused"},  # a 451: the sink did not keep it
        {"message_id": "<e>", "outcome": "accepted"},
        {"message_id": "<f>", "outcome": "refused"},  # a 550: the row ended failed
    ]
    tally = Tally.of(["<a>", "<b>", "<c>", "<d>", "<e>", "<f>"], records, failed=["<f>"])
    assert (tally.accepted, tally.delivered, tally.duplicated, tally.lost) == (6, 4, 1, 1)
    assert (tally.maybe_duplicated, tally.unexpected) == (2, 1)
    assert "duplicated=1" in tally.line()


async def test_cluster_is_killed_and_restarted_with_its_data(pg_cluster: PgCluster) -> None:
    url = pg_cluster.create_database("harness")
    conn = await asyncpg.connect(url, timeout=5)
    await conn.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
    pg_cluster.kill()
    assert not pg_cluster.running
    with pytest.raises((OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
        await conn.fetchval("SELECT 1")
    with pytest.raises(OSError):
        await asyncpg.connect(url, timeout=2)
    pg_cluster.start()  # crash recovery
    conn = await asyncpg.connect(url, timeout=5)
    assert await conn.fetchval("SELECT x FROM t") == 1
    await conn.close()
    pg_cluster.stop()
    assert not pg_cluster.running
    pg_cluster.start()
    conn = await asyncpg.connect(url, timeout=5)
    assert await conn.fetchval("SELECT count(*) FROM t") == 1
    await conn.close()
