"""Tool registration and tool errors: domain errors become tool errors the model can read.

`Tools` registers each tool with its docstring dedented (descriptions read cleanly in
clients) and its icon (icons.py), and remembers the names, so metrics label only real tools. `tool_errors()`
turns any `ResetMCPError` into `ToolError(refusal(exc).message)`; nothing else leaks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from reset_mcp.errors import ResetMCPError, refusal
from reset_mcp.server.mcp.icons import tool_icon

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def tool_errors() -> Iterator[None]:
    try:
        yield
    except ResetMCPError as exc:
        raise ToolError(refusal(exc).message) from None


class Tools:
    """Registers tools on one server and keeps their names."""

    def __init__(self, server: MCPServer[Any]) -> None:
        self.server = server
        self.names: set[str] = set()

    def __call__(self, **kwargs: Any) -> Callable[[F], F]:
        def decorate(fn: F) -> F:
            self.names.add(fn.__name__)
            kwargs.setdefault("icons", tool_icon(fn.__name__))
            return self.server.tool(description=inspect.cleandoc(fn.__doc__ or ""), **kwargs)(fn)  # type: ignore[no-any-return]

        return decorate
