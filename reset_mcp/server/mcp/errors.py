"""Turn domain errors into tool errors the model can read; nothing else leaks."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from reset_mcp.errors import ResetMCPError, StoreError

log = logging.getLogger("reset_mcp.server")
F = TypeVar("F", bound=Callable[..., Any])


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


def tool(server: Any, **kwargs: Any) -> Callable[[F], F]:
    """`server.tool(...)` with the docstring dedented, so descriptions read cleanly in clients."""

    def decorate(fn: F) -> F:
        return server.tool(description=inspect.cleandoc(fn.__doc__ or ""), **kwargs)(fn)  # type: ignore[no-any-return]

    return decorate
