"""The benchmark harness works: its cheapest rows, a few iterations each, deliveries counted.

Not a timed test: nothing here asserts a speed. It checks that the sink (its own process)
counts what it accepts, that each row's figures come out with every message delivered,
that the bench's raw HTTP client and the SDK client both get answers from the same
server, and that the report renders.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from bench import floor, growth, http_rows, inproc, report
from bench.httpclient import call_tool
from bench.sink import SinkProcess

pytestmark = pytest.mark.slow


async def test_bench_rows_deliver_every_message(tmp_path: Path) -> None:
    with SinkProcess() as sink_proc:
        sink = sink_proc.client()
        results: dict = {}

        results["floor"] = await floor.row(sink_proc.port, 5)
        assert results["floor"]["jwt_sign_us"] > 0 and results["floor"]["smtp_send_reused_us"] > 0
        floor_messages = await sink.count()
        assert floor_messages >= 10  # the floor's SMTP sends reached the sink

        results["inproc"] = await inproc.row(sink_proc.port, sink, 5, warmup=2)
        for mode in ("sequential", "concurrency_8"):
            row = results["inproc"][mode]
            assert row["all_delivered"] and row["errors"] == 0 and row["delivered"] == 5, row
            assert len(row["latencies_ms"]) == 5

        results["growth"] = await growth.row(sink_proc.port, sink, [200], 3)
        g = results["growth"]["stored_200"]
        assert g["rows_before_purge"]["tokens"] >= 200
        assert g["rows_after_purge"]["tokens"] < g["rows_before_purge"]["tokens"]  # purge removed old rows
        assert g["full_scans"] == [], g["full_scans"]
        assert g["statements_per_request"] > 0

        stats = await sink.stats()
        assert stats["duplicates"] == 0
        assert stats["count"] == stats["unique"]

    results["ratios"] = report.ratios(results)
    results["targets"] = report.targets(results)
    assert "in-process" in report.table(results)
    json.dumps(results, default=str)


@pytest.mark.skipif(http_rows.http_available() is not None, reason="the HTTP transport is not there yet")
async def test_bench_http_row_and_the_sdk_client_agree(tmp_path: Path) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from bench.common import Identities

    with SinkProcess() as sink_proc, tempfile.TemporaryDirectory(prefix="bench-smoke-") as tmp:
        sink = sink_proc.client()
        server = http_rows.HttpServer(Path(tmp) / "data", sink_proc.port, Path(tmp) / "server.log")
        with server:
            row = await http_rows.measured(server, sink, "smoke", 6, 3)
            assert row["all_delivered"] and row["errors"] == 0, row

            conn = server.connection()
            try:
                raw = await call_tool(conn, "request_password_reset", Identities("raw").tool_args())
            finally:
                await conn.close()
            assert raw["status"] == "sent"

            headers = {"Authorization": f"Bearer {server.key}"}
            async with (
                httpx2.AsyncClient(headers=headers, timeout=30) as http,
                Client(streamable_http_client(f"http://127.0.0.1:{server.port}/mcp", http_client=http)) as client,
            ):
                sdk = await client.call_tool("request_password_reset", Identities("sdk").tool_args())
            assert not sdk.is_error and sdk.structured_content["status"] == "sent"

            vc = await http_rows.verify_consume(server, sink, 3, 2)
            assert vc["errors"] == 0 and vc["n"] == 3 and vc["notices_delivered"], vc
        assert server.outbox_counts() == {"sent": 6 + 2 + 3 + 3}
        assert (await sink.stats())["duplicates"] == 0


@pytest.mark.skipif(http_rows.http_available() is not None, reason="the HTTP transport is not there yet")
async def test_bench_http_row_on_two_workers_then_one(tmp_path: Path) -> None:
    with SinkProcess() as sink_proc:
        sink = sink_proc.client()
        row = await http_rows.row4(sink_proc.port, sink, 6, tmp_path, 2, workers=2)
        assert row["workers"] == 2
        for name in ("concurrency_1", "concurrency_8", "concurrency_32", "one_worker_concurrency_32"):
            assert row[name]["all_delivered"] and row[name]["errors"] == 0 and row[name]["n"] == 6, (name, row[name])
        assert row["verify_consume"]["errors"] == 0
        assert (await sink.stats())["duplicates"] == 0
    table = report.table({"http": row})
    assert "concurrency 32, 2 workers" in table and "concurrency 32, one worker" in table


def test_each_ratio_uses_the_django_runs_just_before_and_after_its_row() -> None:
    beside = {"before": {"per_s": 280.0, "n": 500}, "after": {"per_s": 320.0, "n": 500}, "per_s": 300.0}
    results = {
        "inproc": {"sequential": {"per_s": 600.0}, "concurrency_8": {"per_s": 900.0}},
        "http": {"concurrency_32": {"per_s": 450.0, "all_delivered": True}},
        "django": {"per_s": 500.0},
        "django_beside": {"inproc": beside},  # none beside http: the Django row serves
    }
    r = report.ratios(results)
    assert r["inproc_sequential_vs_django"] == 2.0 and r["inproc_concurrency_8_vs_django"] == 3.0
    assert r["http_concurrency_32_vs_django"] == 0.9
    results["ratios"] = r
    assert report.targets(results)["inproc >= 3x Django"] == {"value": 3.0, "met": True}
    table = report.table(results)
    assert "just before row 2" in table and "just after row 2" in table and "300/s, is its row's peer" in table
