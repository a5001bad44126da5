"""Deeply nested JSON is a 400, never a 500, on every JSON route (issue 22 item 15).

`json.loads` recurses once per nesting level; a 64 KiB body of `[` nests 30,000 deep and
raised RecursionError (a 500 with a traceback in the log). The REST routes refuse any
body nested deeper than `rest.MAX_JSON_DEPTH` before parsing it; the MCP endpoints (the
SDK's parsers) are held to the same answer: a client error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reset_mcp.server.http.rest import MAX_JSON_DEPTH, json_depth
from tests.httpserver import RunningServer, running_server
from tests.test_http import make_settings


def nested(depth: int, *, opener: str = "[", inside: str = "") -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return ('{"token": ' + opener * depth + inside + closer * depth + ', "reason": "x"}').encode()


BODIES = {
    "arrays 30,000 deep": nested(30_000),
    "objects 6,000 deep": nested(6_000, opener='{"a":', inside="1"),
    "arrays 2,000 deep": nested(2_000),  # under the interpreter's recursion limit at the top, not in a route
    "one level too deep": nested(MAX_JSON_DEPTH),
    "unclosed": b'{"token": ' + b"[" * 30_000,
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    keys = {"app": ["redeem"], "admin": ["approve"]}
    with running_server(make_settings(tmp_path_factory.mktemp("nested")), keys) as server:
        yield server


ROUTES = [
    ("app", "/v1/tokens/verify"),
    ("app", "/v1/tokens/consume"),
    ("admin", "/v1/approvals/appr_x/approve"),
    ("admin", "/v1/approvals/appr_x/reject"),
]


@pytest.mark.parametrize("body", list(BODIES), ids=list(BODIES))
@pytest.mark.parametrize(("key", "path"), ROUTES, ids=[p for _, p in ROUTES])
def test_rest_routes_answer_400(
    srv: RunningServer, key: str, path: str, body: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    headers = {**srv.auth(key), "Content-Type": "application/json"}
    r = httpx.post(f"{srv.url}{path}", content=BODIES[body], headers=headers, timeout=30)
    assert r.status_code == 400, r.text
    assert "JSON" in r.json()["error"]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]  # no traceback logged


def test_a_body_at_the_depth_limit_is_read(srv: RunningServer) -> None:
    ok = ('{"token": ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1) + "}").encode()
    headers = {**srv.auth("app"), "Content-Type": "application/json"}
    r = httpx.post(f"{srv.url}/v1/tokens/verify", content=ok, headers=headers)
    assert r.status_code == 400 and "'token'" in r.json()["error"]  # parsed: the field is not a string


MCP_HEADERS = [
    {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"},
    {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2025-11-25",
    },
]


@pytest.mark.parametrize("headers", MCP_HEADERS, ids=["modern", "handshake-era"])
def test_the_mcp_endpoint_answers_a_client_error(srv: RunningServer, headers: dict[str, str]) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
    r = httpx.post(f"{srv.url}/mcp", content=body, headers={**srv.auth("app"), **headers}, timeout=30)
    assert 400 <= r.status_code < 500 or (r.status_code == 200 and "error" in r.text), (r.status_code, r.text[:300])


def test_sse_messages_answer_a_client_error(tmp_path: Path) -> None:
    with running_server(make_settings(tmp_path), {"agent": ["send"]}, transport="sse") as server:
        auth = server.auth("agent")
        with httpx.stream("GET", f"{server.url}/sse", headers=auth, timeout=10) as stream:
            endpoint = next(line for line in stream.iter_lines() if line.startswith("data: "))[6:]
            body = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
            headers = {**auth, "Content-Type": "application/json"}
            r = httpx.post(f"{server.url}{endpoint}", content=body, headers=headers)
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])


@pytest.mark.parametrize(
    ("raw", "depth"),
    [(b"{}", 1), (b'{"a": [1, {"b": "[[[["}]}', 3), (b'"\\"[[["', 0), (b"[" * 50, 50), (b"]]]", 0)],
)
def test_json_depth(raw: bytes, depth: int) -> None:
    assert json_depth(raw) == depth
