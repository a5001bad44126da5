"""Which scope each MCP tool needs, and the middleware that shows a caller only its tools.

`ScopedTools` runs on every inbound message in both protocol eras: it trims `tools/list`
to the tools the caller's key allows and counts tool calls (for /metrics). Without an
access token (stdio, the in-process client) nothing is filtered: the local user holds
every agent scope there, as `caller_of` assumes too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import ListToolsResult

from reset_mcp.metrics import Metrics
from reset_mcp.vocab import Scope

# Tools the app's reset page calls; every other MCP tool is the agent's (`send`).
# No MCP tool needs `approve`: deciding held emails is for humans, over REST or the CLI.
REDEEM_TOOLS = frozenset({"verify_reset_token", "consume_reset_token", "report_unrequested_reset"})
# Contact reads: an agent's key sees its own part, a `contacts:read` key (support) all of it.
CONTACT_TOOLS = frozenset({"get_contact", "check_reset_abuse"})
CONTACT_READERS = frozenset({Scope.SEND, Scope.CONTACTS_READ})


def scopes_for(tool: str) -> frozenset[Scope]:
    """The scopes any one of which lets a key call `tool`."""
    if tool in REDEEM_TOOLS:
        return frozenset({Scope.REDEEM})
    return CONTACT_READERS if tool in CONTACT_TOOLS else frozenset({Scope.SEND})


@dataclass
class ScopedTools:
    known: Collection[str]  # the registered tools: only these become metric labels
    metrics: Callable[[], Metrics | None]

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/list":
            result = await call_next(ctx)
            token = get_access_token()
            return result if token is None else _only_visible(result, frozenset(token.scopes))
        if ctx.method != "tools/call":
            return await call_next(ctx)
        name = (ctx.params or {}).get("name")
        status = "error"
        try:
            result = await call_next(ctx)
            status = "error" if _is_error(result) else "ok"
            return result
        finally:
            metrics = self.metrics()
            if metrics is not None:
                metrics.tool_call(name if name in self.known else "unknown", status)


def _is_error(result: HandlerResult) -> bool:
    if isinstance(result, Mapping):
        return bool(result.get("isError"))
    return bool(getattr(result, "is_error", False))


def _only_visible(result: HandlerResult, scopes: frozenset[str]) -> HandlerResult:
    # The runner hands middleware the wire dict; a model is handled too, should that change.
    if isinstance(result, Mapping) and isinstance(result.get("tools"), list):
        return {**result, "tools": [t for t in result["tools"] if scopes_for(str(t.get("name"))) & scopes]}
    if isinstance(result, ListToolsResult):
        return result.model_copy(update={"tools": [t for t in result.tools if scopes_for(t.name) & scopes]})
    return result
