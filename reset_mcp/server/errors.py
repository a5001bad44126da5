"""Turn domain errors into tool errors the model can read; nothing else leaks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError

from reset_mcp.errors import ResetMCPError, StoreError

log = logging.getLogger("reset_mcp.server")


@contextmanager
def tool_errors() -> Iterator[None]:
    try:
        yield
    except StoreError as exc:
        # The driver's text can name tables and paths; the agent gets a stable message.
        log.error("store error: %s", exc)
        raise ToolError("the reset-mcp database is unavailable; try again shortly") from None
    except ResetMCPError as exc:
        raise ToolError(str(exc)) from None
