"""Who may do what over HTTP: bearer API keys (and OAuth access tokens) and their scopes.

MCP requests are authenticated by the SDK (`token_verifier=` + `AuthSettings`, built by
oauth_wiring.mcp_auth): no key or a wrong key is answered 401 with `WWW-Authenticate`
before any MCP message is read; each tool then checks its own scope
(`server/mcp/caller.py`). REST routes use `KeyAuth` below with the same verifier: the same
credentials, the same caller identity (`key:<id>`, `oauth:<sub>`), so an approval
requested over MCP cannot be decided over REST with the same credentials.

The SDK lets a verifier's exception through to its own error handler, a bare HTTP 500.
So `KeyCheck`, in front of the SDK's MCP app, checks presented credentials first: a
database that cannot answer is a 503 with `Retry-After` and a JSON-RPC error carrying the
documented message (which MCP clients show), and the SDK's verifier (`CheckedVerifier`)
reuses that answer rather than reading again. Nothing is cached beyond the request.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from mcp.server.auth.provider import AccessToken, TokenVerifier
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from reset_mcp.app import App
from reset_mcp.deps import Caller
from reset_mcp.errors import StoreError, refusal
from reset_mcp.server.mcp.caller import credentials_of, principal_of
from reset_mcp.store.deadline import deadline
from reset_mcp.store.records import ApiKeyRecord

# The credentials `KeyCheck` checked for this request and what it found, for the SDK's verifier.
_checked: ContextVar[tuple[str, AccessToken | None] | None] = ContextVar("reset_mcp_key_checked", default=None)
SERVER_ERROR = -32000  # JSON-RPC: the range -32000..-32099 is the server's own


@dataclass
class AppHolder:
    """The App the HTTP lifespan runs, lent to the routes, the key verifier and the MCP server."""

    app: App | None = None

    def get(self) -> App:
        if self.app is None:
            raise RuntimeError("the HTTP server is not running (lifespan not started)")
        return self.app

    @contextmanager
    def lend(self, app: App) -> Iterator[None]:
        self.app = app
        try:
            yield
        finally:
            self.app = None


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
    return None if app is None else await app.service.keys.authenticate(presented)


class HTTPProblem(Exception):
    """An HTTP error answer: status, a message safe to show, extra headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class KeyAuth:
    """REST authentication: `Authorization: Bearer <API key or OAuth access token>`, then the
    scope the route needs. `verifier` is the MCP endpoint's own (oauth_wiring.mcp_auth), so
    both accept the same credentials and name the same caller."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def caller(self, request: Request, scope: str | None) -> Caller:
        """The caller, or HTTPProblem 401 (no or wrong credentials) / 403 (scope missing, named)."""
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise HTTPProblem(401, "an API key is required", {"WWW-Authenticate": 'Bearer realm="reset-mcp"'})
        token = await self.verifier.verify_token(presented.strip())
        if token is None:
            raise HTTPProblem(
                401,
                "invalid or revoked API key",
                {"WWW-Authenticate": 'Bearer realm="reset-mcp", error="invalid_token"'},
            )
        if scope is not None and scope not in token.scopes:
            raise HTTPProblem(
                403,
                f"{credentials_of(token)} lacks the '{scope}' scope",
                {"WWW-Authenticate": f'Bearer realm="reset-mcp", error="insufficient_scope", scope="{scope}"'},
            )
        peer = request.client.host if request.client else None
        return Caller(principal_of(token), frozenset(token.scopes), peer=peer)


class CheckedVerifier(TokenVerifier):
    """The verifier the SDK is given: the answer `KeyCheck` found for this request's
    credentials, else `inner`'s (a request `KeyCheck` did not see)."""

    def __init__(self, inner: TokenVerifier) -> None:
        self.inner = inner

    async def verify_token(self, token: str) -> AccessToken | None:
        checked = _checked.get()
        if checked is not None and checked[0] == token:
            return checked[1]
        return await self.inner.verify_token(token)


class KeyCheck:
    """ASGI, in front of the SDK's MCP app: the presented bearer credentials are checked
    here first, within the call's database deadline; a store error is answered 503 here."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier, holder: AppHolder) -> None:
        self.app = app
        self.verifier = verifier
        self.holder = holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.holder.app
        token = _bearer(scope) if scope["type"] == "http" and app is not None else None
        if token is None or app is None:
            await self.app(scope, receive, send)
            return
        try:
            with deadline(app.bounds.store_seconds):
                access = await self.verifier.verify_token(token)
        except StoreError as exc:
            answer = refusal(exc)
            error = {"code": SERVER_ERROR, "message": answer.message}
            body = {"jsonrpc": "2.0", "id": None, "error": error}  # the client puts its request's id back
            await JSONResponse(body, status_code=answer.status, headers=answer.headers)(scope, receive, send)
            return
        reset = _checked.set((token, access))
        try:
            await self.app(scope, receive, send)
        finally:
            _checked.reset(reset)


def _bearer(scope: Scope) -> str | None:
    # As the SDK's BearerAuthBackend reads it, so the two agree on which token was presented.
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            header = value.decode("latin-1")
            return header[7:] if header.lower().startswith("bearer ") else None
    return None
