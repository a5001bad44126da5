"""A minimal keep-alive HTTP/1.1 client for load generation, and the MCP calls it makes.

The load generator shares two cores with the server and the sink, so it must cost
little: one asyncio stream per connection, no pooling layer, no retries. It speaks the
MCP 2026-07-28 single-exchange wire exactly as the SDK client does (one self-contained
JSON-RPC POST per call, `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers);
`tests/test_bench_smoke.py` checks the same server also answers the SDK client.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from typing import Any

PROTOCOL = "2026-07-28"
_META = {
    "io.modelcontextprotocol/protocolVersion": PROTOCOL,
    "io.modelcontextprotocol/clientInfo": {"name": "reset-mcp-bench", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
_ids = itertools.count(1)


class HttpError(Exception):
    pass


class Connection:
    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None) -> None:
        self.host, self.port = host, port
        self.base_headers = {"Host": f"{host}:{port}", **(headers or {})}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._reader = self._writer = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        if self._writer is None:
            await self._open()
        assert self._reader is not None and self._writer is not None
        lines = [f"{method} {path} HTTP/1.1"]
        for name, value in {**self.base_headers, **(headers or {}), "Content-Length": str(len(body))}.items():
            lines.append(f"{name}: {value}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        try:
            return await self._response()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.close()
            raise HttpError(f"connection lost: {exc}") from exc

    async def _response(self) -> tuple[int, dict[str, str], bytes]:
        reader = self._reader
        assert reader is not None
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            body = b"".join(parts)
        else:
            body = await reader.read()
            await self.close()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, body


def _decode_rpc(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    if headers.get("content-type", "").startswith("text/event-stream"):
        for line in body.decode().splitlines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if "result" in msg or "error" in msg:
                    return msg  # type: ignore[no-any-return]
        raise HttpError("no JSON-RPC response in the event stream")
    return json.loads(body)  # type: ignore[no-any-return]


async def call_tool(conn: Connection, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One MCP tools/call; returns the structured result or raises HttpError."""
    payload = {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": _META},
    }
    status, headers, body = await conn.request(
        "POST",
        "/mcp",
        json.dumps(payload, separators=(",", ":")).encode(),
        {
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "MCP-Protocol-Version": PROTOCOL,
            "Mcp-Method": "tools/call",
            "Mcp-Name": name,
        },
    )
    if status != 200:
        raise HttpError(f"HTTP {status}: {body[:200]!r}")
    msg = _decode_rpc(headers, body)
    if "error" in msg:
        raise HttpError(f"JSON-RPC error: {msg['error']}")
    result = msg["result"]
    if result.get("isError"):
        raise HttpError(f"tool error: {json.dumps(result.get('content'))[:300]}")
    return result.get("structuredContent") or {}


async def post_json(conn: Connection, path: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, _, body = await conn.request(
        "POST", path, json.dumps(data).encode(), {"Content-Type": "application/json", "Accept": "application/json"}
    )
    return status, json.loads(body) if body else {}
