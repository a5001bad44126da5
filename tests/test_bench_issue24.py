"""Issue 24's bench parts: the /proc parsing behind the cpu row, the smtp-sink wrapper (its
parsing, its skip when smtp-sink is absent, and, where it is installed, a real count of
delivered messages by recipient), the ratios and targets on both sinks."""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from bench import cpu_row, postfix_sink, report, report_cpu
from bench.postfix_sink import PostfixSink

# A real /proc/<pid>/stat line, with a command name holding a space and a ')'.
STAT = (
    "4242 (python ) x) S 4000 4242 4000 0 -1 4194304 5000 0 0 0 "
    "150 37 9 4 20 0 3 0 123456 400000000 20000 18446744073709551615"
)


def test_parse_stat_counts_fields_after_the_last_parenthesis() -> None:
    ppid, ticks = cpu_row.parse_stat(STAT)
    assert ppid == 4000
    assert ticks == 150 + 37 + 9 + 4  # utime + stime + cutime + cstime


def test_the_tree_holds_the_root_and_every_descendant_only() -> None:
    table = {1: (0, 5), 10: (1, 100), 11: (10, 7), 12: (11, 3), 20: (1, 50)}
    assert sorted(cpu_row.tree(10, table)) == [10, 11, 12]
    assert cpu_row.tree(99, table) == []


def test_tree_ticks_sees_a_child_burn_cpu() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ntime.sleep(5)"
    child = subprocess.Popen([sys.executable, "-c", burn])
    try:
        assert child.pid in cpu_row.children(os.getpid())
        time.sleep(0.6)
        ticks = cpu_row.tree_ticks(child.pid)
        assert 0.2 <= ticks / cpu_row.CLK_TCK <= 1.0, ticks
    finally:
        child.kill()
        child.wait()


def test_smtp_sink_counters_and_dump_lines_are_parsed() -> None:
    assert postfix_sink.parse_counts(b"sess=0 quit=0 mesg=1\rsess=1 quit=1 mesg=12") == [1, 12]
    head = (
        b"X-Client-Addr: 127.0.0.1\nX-Mail-Args: <a@x>\nX-Rcpt-Args: <Ab@Y.com>\nX-Rcpt-Args: <c@y.com>\n"
        b"Received: from [127.0.0.1]\nSubject: hi\nX-Rcpt-Args: <forged@y.com>\n"
    )
    assert postfix_sink.recipients(head) == ["ab@y.com", "c@y.com"]  # not the message's own header


def test_smtp_sink_missing_is_a_reason_not_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    assert "smtp-sink is not installed" in (postfix_sink.missing() or "")
    with pytest.raises(RuntimeError, match="not installed"):
        PostfixSink()
    table = report.table({"smtp_sink": {"skipped": postfix_sink.missing()}})
    assert "skipped: smtp-sink is not installed" in table


@pytest.mark.skipif(postfix_sink.missing() is not None, reason="smtp-sink is not installed")
def test_smtp_sink_counts_each_recipient_it_received() -> None:
    with PostfixSink() as pf:
        before = pf.dumped()
        for i in range(5):
            with smtplib.SMTP("127.0.0.1", pf.port) as s:
                s.sendmail("a@x.com", [f"r{i % 4}@y.com"], f"Subject: {i}\r\n\r\nbody\r\n")
        assert anyio.run(pf.wait, 5, 5.0)
        assert pf.count() == 5 and pf.counted_at(5) is not None and pf.counted_at(6) is None
        got = pf.recipients_since(before)
        assert got == {"r0@y.com": 2, "r1@y.com": 1, "r2@y.com": 1, "r3@y.com": 1}


def test_issue_24_ratios_and_targets_use_the_django_runs_beside_on_each_sink() -> None:
    def run(per_s: float) -> dict:
        return {"per_s": per_s, "all_delivered": True}

    results = {
        "stdio": run(400.0),
        "http": {"workers": 1, "concurrency_32": run(900.0)},  # one worker: c=32 is the one-worker series
        "django": run(100.0),
        "django_beside": {"stdio": {"per_s": 400.0}, "http": {"per_s": 400.0}},
        "smtp_sink": {
            "stdio": run(300.0),
            "http": run(700.0) | {"all_delivered": False},
            "django": run(350.0),
            "django_beside": {"stdio": {"per_s": 250.0}},  # none beside http: smtp-sink's Django row serves
        },
        "cpu": {
            "stdio": {"server_cpu_ms_per_call": 1.2},
            "http": {"server_cpu_ms_per_call": 1.6},
            "http_sdk_floor": {"server_cpu_ms_per_call": 0.9},
        },
    }
    r = report.ratios(results)
    assert r["stdio_sequential_vs_django"] == 1.0
    assert r["http_one_worker_concurrency_32_vs_django"] == 2.25
    assert r["smtp_sink_stdio_sequential_vs_django"] == 1.2
    assert r["smtp_sink_http_one_worker_concurrency_32_vs_django"] == 2.0
    results["ratios"] = r
    t = report.targets(results)
    assert t["server CPU per call, stdio <= 1.2 ms"]["met"] is True
    assert t["server CPU per call, HTTP <= 1.5 ms"] == {"value": 1.6, "met": False, "sdk_floor": 0.9}
    assert "sdk_floor" not in t["server CPU per call, stdio <= 1.2 ms"]  # none measured
    assert t["stdio sequential >= 1.0x Django (own sink), all delivered"]["met"] is True
    assert t["HTTP c32 one worker >= 2.0x Django (smtp-sink), all delivered"] == {"value": 2.0, "met": False}
    assert report_cpu.one_worker_c32({"workers": 2, "concurrency_32": run(1.0)}) is None  # not one worker


@pytest.mark.slow
async def test_the_cpu_row_measures_both_servers(tmp_path: Path) -> None:
    row = await cpu_row.row(20, tmp_path, warmup=3)
    for transport in ("stdio", "http", "stdio_sdk_floor", "http_sdk_floor"):
        c = row[transport]
        # errors == 0: every answer, the SDK floor's constant one too, read `status: sent`.
        assert c["errors"] == 0 and c["n"] == 20, c
        assert c["server_processes"] == 1
        assert c.get("sdk_floor", False) is transport.endswith("floor")
        assert 0 < c["server_cpu_ms_per_call"] < 1000 and c["calls_per_s"] > 0, c
    lines = report_cpu.rows({"cpu": row}, str)
    assert [line[1] for line in lines] == [
        "stdio, sequential (calls/s)", "stdio, SDK floor (calls/s)",
        "streamable-http, sequential (calls/s)", "streamable-http, SDK floor (calls/s)",
    ]  # fmt: skip
    assert "over the SDK floor" in lines[0][-1] and "the SDK alone" in lines[1][-1]


@pytest.mark.slow
@pytest.mark.skipif(postfix_sink.missing() is not None, reason="smtp-sink is not installed")
async def test_the_smtp_sink_rows_deliver_every_message_once(tmp_path: Path) -> None:
    from bench import postfix_rows

    with PostfixSink() as pf:
        stdio = await postfix_rows.stdio(pf, 5, warmup=2)
        http = await postfix_rows.http_one_worker(pf, 8, tmp_path, concurrency=4)
        django = await postfix_rows.django(pf, 5, tmp_path / "django", warmup=2)
    for row in (stdio, http, django):
        assert row["all_delivered"] and row["delivered"] == row["n"] and row["delivered_twice"] == 0, row
        assert row["per_s"] > 0 and len(row["latencies_ms"]) == row["n"]
