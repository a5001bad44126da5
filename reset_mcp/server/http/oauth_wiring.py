"""How MCP over HTTP authenticates, in one call: keys only, or keys plus an OAuth issuer.

What the SDK does with `auth=AuthSettings(...)` and a `token_verifier` (mcp 2.3):
- it answers 401 on `/mcp` without a valid bearer token, and adds
  `resource_metadata="<RFC 9728 URL>"` to `WWW-Authenticate` when
  `AuthSettings.resource_server_url` is set;
- it serves RFC 9728 protected-resource metadata at that URL, naming
  `AuthSettings.issuer_url` as the authorization server;
- `issuer_url` is used for nothing else unless it also runs an authorization server.

Keys only (no RESET_MCP_OAUTH_ISSUER): `resource_server_url` stays unset, so there is no
metadata and no pointer to any; an OAuth client (the Inspector among them) is not sent to
metadata that would 404. `issuer_url` is a required field the SDK then never reads.

With an issuer: the metadata names the real issuer and our scopes, the 401 points to it,
and the verifier checks audience itself (`validate_token_resource=False`: our keys carry
no audience, and JWT audiences are checked with their spellings in oauth.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.routes import build_resource_metadata_url, create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from starlette.routing import Route

from reset_mcp.config import Settings
from reset_mcp.server.http.oauth import SCOPE_MAP, JwtVerifier, KeysThenOAuth
from reset_mcp.server.http.oauth_keys import IssuerKeys


@dataclass
class McpAuth:
    """What `build_server(token_verifier=, auth=)` and the app's routes need."""

    verifier: KeysThenOAuth
    settings: AuthSettings
    routes: list[Route] = field(default_factory=list)
    issuer_keys: IssuerKeys | None = None

    @property
    def metadata_url(self) -> str | None:
        url = self.settings.resource_server_url
        return None if url is None else str(build_resource_metadata_url(url))

    async def aclose(self) -> None:
        if self.issuer_keys is not None:
            await self.issuer_keys.aclose()


def resource_url(settings: Settings, mcp_path: str = "/mcp") -> str:
    """This server's MCP URL, the RFC 8707 resource its tokens must be issued for."""
    return settings.oauth_audience or f"{settings.public_base_url}{mcp_path}"


def mcp_auth(settings: Settings, keys: TokenVerifier, mcp_path: str = "/mcp") -> McpAuth:
    """The verifier, AuthSettings and metadata routes for RESET_MCP_OAUTH_* as configured."""
    if not settings.oauth_issuer:
        return McpAuth(
            verifier=KeysThenOAuth(keys, None),
            # issuer_url is required by the model and unread without resource_server_url.
            settings=AuthSettings(issuer_url=settings.public_base_url, resource_server_url=None),  # type: ignore[arg-type]
        )
    resource = resource_url(settings, mcp_path)
    issuer_keys = IssuerKeys(settings.oauth_issuer, cache_seconds=settings.oauth_jwks_cache_seconds)
    auth = AuthSettings(
        issuer_url=settings.oauth_issuer,  # type: ignore[arg-type]
        resource_server_url=resource,  # type: ignore[arg-type]
        validate_token_resource=False,  # the verifier checks `aud` itself; keys have none
    )
    # Our own copy of the metadata route, mounted before the SDK app so it wins: the SDK's
    # takes `scopes_supported` from `required_scopes`, which it would also demand of every
    # token (all of them), and a client reads `scopes_supported` to know what to ask for.
    routes = create_protected_resource_routes(
        resource_url=resource,  # type: ignore[arg-type]  # strings keep the issuer's exact spelling
        authorization_servers=[settings.oauth_issuer],  # type: ignore[list-item]
        scopes_supported=list(SCOPE_MAP),
        resource_name="reset-mcp",
    )
    return McpAuth(
        verifier=KeysThenOAuth(keys, JwtVerifier(settings.oauth_issuer, resource, issuer_keys)),
        settings=auth,
        routes=routes,
        issuer_keys=issuer_keys,
    )
