"""Issue 21, item 2 with an HTTP email provider: a real `reset-mcp serve` whose webhook
provider (a real HTTP server on loopback) takes each request and does not answer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.faults.serving import reset_call, server_env, stdio_server
from tests.faults.sink import HOST, FaultSink
from tests.faults.tally import sqlite_outbox

pytestmark = pytest.mark.slow


class HangingProvider:
    """Records each POST's message id, then holds the request until `release()` (and
    answers 200), as a provider whose API stalled would."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answered: list[str] = []
        self.release_all = threading.Event()

    def release(self) -> None:
        self.release_all.set()

    @contextmanager
    def serving(self) -> Iterator[str]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                provider.received.append({"t": time.time(), "message_id": body["message_id"]})
                provider.release_all.wait(60)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps({"id": body["idempotency_key"]}).encode())
                provider.answered.append(body["message_id"])

            def log_message(self, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer((HOST, 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://{HOST}:{server.server_address[1]}/hook"
        finally:
            self.release()
            server.shutdown()
            server.server_close()


async def test_a_stalled_http_provider_costs_a_call_only_the_send_wait(
    tmp_path: Path, sink: FaultSink, log: Path
) -> None:
    data = tmp_path / "data"
    provider = HangingProvider()
    with provider.serving() as url:
        env = server_env(
            data, sink.port, RESET_MCP_EMAIL_BACKEND="webhook", RESET_MCP_WEBHOOK_URL=url,
            RESET_MCP_WEBHOOK_SECRET="whsec-" + "x" * 32,
        )  # fmt: skip
        async with stdio_server(env, log) as (client, _):
            started = time.monotonic()
            result = await client.call_tool("request_password_reset", reset_call(0))
            elapsed = time.monotonic() - started
            listed = time.monotonic()
            await client.list_tools()
            listed = time.monotonic() - listed
            [row] = sqlite_outbox(data / "reset-mcp.db")
            held = row["status"]
            provider.release()  # the provider answers at last: the delivery in flight ends
            with anyio.fail_after(15):
                while (row := sqlite_outbox(data / "reset-mcp.db")[0])["status"] == "sending":
                    await anyio.sleep(0.1)
    out = result.structured_content
    print(
        f"stalled HTTP provider: the call answered {out['status']}/{out['delivery']['status']} in {elapsed:.1f} s; "
        f"received {len(provider.received)}, answered {len(provider.answered)}; row {row['status']}"
    )
    assert elapsed < 3 + 1.5 and listed < 1.0
    assert (out["status"], out["delivery"]["status"], held) == ("queued", "sending", "sending")
    assert [r["message_id"] for r in provider.received] == [row["message_id"]]  # once
    assert (row["status"], row["attempts"]) == ("sent", 1)
