"""Who is calling a tool: the stdio user, or the holder of an HTTP API key."""

from __future__ import annotations

from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from reset_mcp.app import App
from reset_mcp.deps import STDIO_CALLER, Caller


def app_of(ctx: Context[Any]) -> App:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


def caller_of(ctx: Context[Any], needs: str) -> Caller:
    """The caller, refused with a tool error naming the scope it lacks."""
    try:
        caps = ctx.client_capabilities
    except Exception:
        caps = None
    can_elicit = bool(caps and caps.elicitation)
    token = get_access_token()
    if token is None:
        # stdio and the in-process client: the local user holds every agent scope.
        return Caller(STDIO_CALLER.id, STDIO_CALLER.scopes, can_elicit)
    scopes = frozenset(token.scopes)
    if needs not in scopes:
        raise ToolError(f"this API key lacks the '{needs}' scope")
    return Caller(f"key:{token.client_id}", scopes, can_elicit)
