"""Who may do what over HTTP: bearer API keys (and OAuth access tokens) and their scopes.

MCP requests are authenticated by the SDK (`token_verifier=` + `AuthSettings`, built by
oauth_wiring.mcp_auth): no key or a wrong key is answered 401 with `WWW-Authenticate`
before any MCP message is read; each tool then checks its own scope
(`server/mcp/caller.py`). REST routes use `KeyAuth` below with the same verifier: the same
credentials, the same caller identity (`key:<id>`, `oauth:<sub>`), so an approval
requested over MCP cannot be decided over REST with the same credentials.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from mcp.server.auth.provider import AccessToken, TokenVerifier
from starlette.requests import Request

from reset_mcp.app import App
from reset_mcp.deps import Caller
from reset_mcp.server.mcp.caller import credentials_of, principal_of
from reset_mcp.store.records import ApiKeyRecord


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
