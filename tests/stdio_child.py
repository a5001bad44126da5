"""`serve` on stdio as a child process for the terminal tests, wired two ways.

    python -m tests.stdio_child ours [asyncio|uvloop]   reset_mcp.server.stdio (the fix)
    python -m tests.stdio_child sdk  [asyncio|uvloop]   MCPServer.run_stdio_async (the SDK as it is)

It mirrors `reset-mcp serve` (reset_mcp/server/run.py and cli.py): the same app with its
delivery worker, the same exit codes (130 on Ctrl-C, 1 on a start-up error). Once run.py
uses reset_mcp.server.stdio, the tests can run `-m reset_mcp serve` instead of `ours`.
"""

from __future__ import annotations

import sys

import anyio

from reset_mcp.cli import configure_logging
from reset_mcp.config import load_settings
from reset_mcp.errors import ResetMCPError
from reset_mcp.server.mcp_app import build_server
from reset_mcp.server.run import app_with_worker, loop_options
from reset_mcp.server.stdio import announce_when_started, serve_stdio


def main(wiring: str, loop: str) -> int:
    settings = load_settings()
    configure_logging(settings.log_level)
    options = loop_options() if loop == "uvloop" else {}
    try:
        if wiring == "sdk":
            server = build_server(lambda: app_with_worker(settings))
            anyio.run(server.run_stdio_async, backend_options=options)
        else:
            server = build_server(announce_when_started(lambda: app_with_worker(settings)))
            serve_stdio(server, options)
    except ResetMCPError as exc:
        print(f"reset-mcp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "uvloop"))
