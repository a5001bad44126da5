"""The SDK's floor under row 8: `python -m bench.sdk_floor [--http PORT]`.

An MCP server whose one tool is `request_password_reset` with reset-mcp's arguments
(the same names, types and limits) and its result model, `ResetRequestResult`, but no
body: it returns a constant. What it costs per call is what the SDK costs for such a call,
served the way reset-mcp serves it: the SDK's `MCPServer`, its OpenTelemetry middleware
dropped as `RESET_MCP_TRACING=auto` drops it, `Mcp-Param-*` checks skipped as ours are,
stdio through `reset_mcp.server.stdio`, streamable HTTP through the SDK's own app under
uvicorn with the options of `reset-mcp serve`'s default. Row 8 measures it beside the
real server, so the part of a call that is reset-mcp's own work is the difference, read
in one run on one machine.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from reset_mcp.models import DeliveryInfo, ResetRequestResult
from reset_mcp.server.mcp.arguments import AccountId
from reset_mcp.server.mcp.param_headers import skip_undeclared_header_checks
from reset_mcp.server.mcp.tools_reset import Agent, Email, IdempotencyKey, Ip, Locale, Timezone
from reset_mcp.server.mcp.tracing import apply_tracing
from reset_mcp.server.stdio import serve_stdio

Text = Annotated[str | None, Field(max_length=200)]

ANSWER = ResetRequestResult(
    request_id="req_0123456789abcdefghijkl",
    status="sent",
    expires_at=datetime(2026, 1, 1, tzinfo=UTC),
    delivery=DeliveryInfo(status="sent", backend="memory", elapsed_ms=0.3, attempts=1),
    risk="low",
)


def build() -> MCPServer:
    server = MCPServer("sdk-floor")
    apply_tracing(server, "off")
    skip_undeclared_header_checks(server)

    @server.tool()
    async def request_password_reset(
        email: Email,
        user_id: Annotated[AccountId, Field(max_length=200)],
        ip: Ip,
        user_agent: Agent,
        name: Text = None,
        location: Text = None,
        locale: Locale = None,
        timezone: Timezone = None,
        idempotency_key: IdempotencyKey = None,
    ) -> ResetRequestResult:
        """The SDK's floor: reset-mcp's arguments and result, no body."""
        return ANSWER

    return server


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.sdk_floor")
    p.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on 127.0.0.1:PORT, else stdio")
    args = p.parse_args()
    server = build()
    if args.http is None:
        serve_stdio(server)
        return
    import uvicorn

    app = server.streamable_http_app(streamable_http_path="/mcp", host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=args.http, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
