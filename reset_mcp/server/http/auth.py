"""Who may do what over HTTP: bearer API keys, their scopes, and the tools each caller sees.

MCP requests are authenticated by the SDK (`token_verifier=` + `AuthSettings`): no key
or a wrong key is answered 401 with `WWW-Authenticate` before any MCP message is read.
Each tool then checks its own scope (`caller_of`), answering a tool error that names
the missing scope. `ScopedTools`, a server middleware, trims `tools/list` to the tools
the caller's scopes allow (it runs on every inbound message in both protocol eras) and
counts tool calls for /metrics. REST routes use `KeyAuth` below: the same keys, the same
`key:<id>` caller identity, so an approval requested over MCP cannot be decided over REST
with the same key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp_types import ListToolsResult
from starlette.requests import Request

from reset_mcp.app import App
from reset_mcp.deps import Caller
from reset_mcp.keys import verify_key
from reset_mcp.server.http.metrics import Metrics
from reset_mcp.store.records import ApiKeyRecord

# Tools the app's reset page calls; every other MCP tool is the agent's (`send`).
# No MCP tool needs `approve`: deciding held emails is for humans, over REST or the CLI.
REDEEM_TOOLS = frozenset({"verify_reset_token", "consume_reset_token", "report_unrequested_reset"})


def scope_for(tool: str) -> str:
    return "redeem" if tool in REDEEM_TOOLS else "send"


@dataclass
class AppHolder:
    """The App built by the HTTP lifespan, shared by routes, the verifier and the MCP server."""

    app: App | None = None

    def get(self) -> App:
        if self.app is None:
            raise RuntimeError("the HTTP server is not running (lifespan not started)")
        return self.app


class KeyVerifier(TokenVerifier):
    """The SDK's token verifier, backed by our API keys (revocation takes effect at once)."""

    def __init__(self, holder: AppHolder) -> None:
        self.holder = holder

    async def verify_token(self, token: str) -> AccessToken | None:
        record = await authenticate(self.holder, token)
        if record is None:
            return None
        return AccessToken(token=token, client_id=record.id, scopes=list(record.scopes))


async def authenticate(holder: AppHolder, presented: str) -> ApiKeyRecord | None:
    app = holder.app
    if app is None:
        return None
    async with app.store.reading() as tx:  # no write lock: a key check never waits for a writer
        return await verify_key(tx, presented)


@dataclass
class ScopedTools:
    """Server middleware: `tools/list` shows only what the key's scopes allow; calls are counted.

    Without an access token (stdio, the in-process client) nothing is filtered: the local
    user holds every agent scope there, as `caller_of` assumes too.
    """

    metrics: Metrics | None = None

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/list":
            result = await call_next(ctx)
            token = get_access_token()
            return result if token is None else _only_visible(result, frozenset(token.scopes))
        if ctx.method != "tools/call" or self.metrics is None:
            return await call_next(ctx)
        name = (ctx.params or {}).get("name")
        status = "error"
        try:
            result = await call_next(ctx)
            status = "error" if _is_error(result) else "ok"
            return result
        finally:
            self.metrics.tool_call(name if isinstance(name, str) else "", status)


def _is_error(result: HandlerResult) -> bool:
    if isinstance(result, Mapping):
        return bool(result.get("isError"))
    return bool(getattr(result, "is_error", False))


def _only_visible(result: HandlerResult, scopes: frozenset[str]) -> HandlerResult:
    # The runner hands middleware the wire dict; a model is handled too, should that change.
    if isinstance(result, Mapping) and isinstance(result.get("tools"), list):
        return {**result, "tools": [t for t in result["tools"] if scope_for(str(t.get("name"))) in scopes]}
    if isinstance(result, ListToolsResult):
        return result.model_copy(update={"tools": [t for t in result.tools if scope_for(t.name) in scopes]})
    return result


class HTTPProblem(Exception):
    """An HTTP error answer: status, a message safe to show, extra headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class KeyAuth:
    """REST authentication: `Authorization: Bearer rmcp_...`, then the scope the route needs."""

    def __init__(self, holder: AppHolder) -> None:
        self.holder = holder

    async def caller(self, request: Request, scope: str | None) -> Caller:
        """The caller, or HTTPProblem 401 (no or wrong key) / 403 (scope missing, named)."""
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise HTTPProblem(401, "an API key is required", {"WWW-Authenticate": 'Bearer realm="reset-mcp"'})
        record = await authenticate(self.holder, presented.strip())
        if record is None:
            raise HTTPProblem(
                401,
                "invalid or revoked API key",
                {"WWW-Authenticate": 'Bearer realm="reset-mcp", error="invalid_token"'},
            )
        if scope is not None and scope not in record.scopes:
            raise HTTPProblem(
                403,
                f"this API key lacks the '{scope}' scope",
                {"WWW-Authenticate": f'Bearer realm="reset-mcp", error="insufficient_scope", scope="{scope}"'},
            )
        return Caller(f"key:{record.id}", frozenset(record.scopes))
