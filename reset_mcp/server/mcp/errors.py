"""Tool registration and tool errors: domain errors become tool errors the model can read.

`Tools` registers each tool with its docstring dedented (descriptions read cleanly in
clients) and its icon (icons.py), and remembers the names, so metrics label only real
tools; each tool's body runs within the App's call bounds (`bounds.CallBounds`: one
deadline for its store waits, a hard bound on the whole), after any confirmation question
was answered. `tool_errors()` turns any `ResetMCPError` into
`ToolError(refusal(exc).message)`; nothing else leaks.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from reset_mcp.errors import ResetMCPError, refusal
from reset_mcp.models import UNTRUSTED_NOTE
from reset_mcp.server.mcp.icons import tool_icon
from reset_mcp.server.mcp.marking import result_paths

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def tool_errors() -> Iterator[None]:
    try:
        yield
    except ResetMCPError as exc:
        raise ToolError(refusal(exc).message) from None


class Tools:
    """Registers tools on one server and keeps their names, and each one's untrusted result
    fields (for `marking.UntrustedMeta`, whose note ends the tool's description)."""

    def __init__(self, server: MCPServer[Any]) -> None:
        self.server = server
        self.names: set[str] = set()
        self.untrusted: dict[str, list[str]] = {}

    def __call__(self, **kwargs: Any) -> Callable[[F], F]:
        def decorate(fn: F) -> F:
            self.names.add(fn.__name__)
            kwargs.setdefault("icons", tool_icon(fn.__name__))
            description = inspect.cleandoc(fn.__doc__ or "")
            if paths := result_paths(fn):
                self.untrusted[fn.__name__] = paths
                description += "\n\n" + UNTRUSTED_NOTE
            bounded = _bounded(fn)
            return self.server.tool(description=description, **kwargs)(bounded)  # type: ignore[no-any-return]

        return decorate


def _bounded(fn: F) -> F:
    """`fn` run within its App's call bounds. The signature (and so the tool's schema, and
    where the SDK passes the context) is `fn`'s own, through `functools.wraps`."""
    if "ctx" not in inspect.signature(fn).parameters:
        raise TypeError(f"tool {fn.__name__} must take `ctx: Context` (its bounds come from the App)")

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> Any:
        app = kwargs["ctx"].request_context.lifespan_context
        with tool_errors(), app.bounds.applied():
            return await fn(*args, **kwargs)

    return call  # type: ignore[return-value]
