"""`serve` on stdio through the SDK's own transport, for the test that pins its behaviour.

    python -m tests.stdio_child [asyncio|uvloop]   MCPServer.run_stdio_async (the SDK as it is)

The same app as `reset-mcp serve` (server/serve.py), with the SDK's `run_stdio_async`
instead of reset_mcp.server.stdio: test_stdio_terminal.py shows that this one ignores
Ctrl-C until Enter. When an SDK release fixes that, the test fails, and stdio.py may go.
"""

from __future__ import annotations

import sys

import anyio

from reset_mcp.app import app_with_jobs
from reset_mcp.config import load_settings
from reset_mcp.logs import configure_logging
from reset_mcp.server.mcp.server import build_server
from reset_mcp.server.serve import loop_options


def main(loop: str) -> int:
    settings = load_settings()
    configure_logging(settings.log_level)
    options = loop_options() if loop == "uvloop" else {}
    server = build_server(lambda: app_with_jobs(settings))
    try:
        anyio.run(server.run_stdio_async, backend_options=options)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "uvloop"))
