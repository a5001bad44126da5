"""Who is calling a tool: the stdio user, or the holder of an HTTP API key or OAuth token."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from reset_mcp.app import App
from reset_mcp.deps import STDIO_CALLER, Caller


def app_of(ctx: Context[Any]) -> App:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


def caller_of(ctx: Context[Any], needs: str | Collection[str]) -> Caller:
    """The caller, refused with a tool error naming the scope it lacks (`needs`: one
    scope, or several any one of which will do)."""
    try:
        caps = ctx.client_capabilities
    except Exception:
        caps = None
    can_elicit = bool(caps and caps.elicitation)
    token = get_access_token()
    if token is None:
        # stdio and the in-process client: the local user holds every agent scope.
        return Caller(STDIO_CALLER.id, STDIO_CALLER.scopes, can_elicit, local=True)
    scopes = frozenset(token.scopes)
    wanted = {needs} if isinstance(needs, str) else set(needs)
    if not wanted & scopes:
        raise ToolError(f"{credentials_of(token)} lacks the '{' or '.join(sorted(wanted))}' scope")
    return Caller(principal_of(token), scopes, can_elicit, peer=_peer(ctx))


def _peer(ctx: Context[Any]) -> str | None:
    """The HTTP connection's address, when the call came over HTTP."""
    request = getattr(ctx.request_context, "request", None)
    client = getattr(request, "client", None)
    return getattr(client, "host", None)


def principal_of(token: AccessToken) -> str:
    """Who holds the token, as the audit log and the four-eyes rule name callers.

    A key is `key:<id>`; an OAuth access token (server/http/oauth.py puts its `iss` in
    `claims`) is `oauth:<sub>` (one issuer, so `sub` is unique), whichever client presents
    it: the same person cannot approve through a second client what they requested
    through the first."""
    if token.claims and "iss" in token.claims and token.subject:
        return f"oauth:{token.subject}"
    return f"key:{token.client_id}"


def credentials_of(token: AccessToken) -> str:
    """What the caller presented, in words: "this API key" or "this access token" (OAuth)."""
    return "this API key" if principal_of(token).startswith("key:") else "this access token"
