"""OAuth 2.1 resource server: JWT access tokens from one issuer, accepted beside our API keys.

With RESET_MCP_OAUTH_ISSUER set, a bearer token that is not one of our keys (`rmcp_...`)
is taken as a JWT access token (RFC 9068) and accepted only when:
- its signature verifies with a key from the issuer's JWKS (oauth_keys.py), under an
  asymmetric algorithm from a pinned list that the key's type fits (never `none`, never
  HMAC: the issuer's public keys must not become shared secrets);
- it carries `exp`, `iat`, `iss`, `aud` and `sub`; `iss` is the issuer; `exp` has not
  passed; `aud` names this server's MCP URL (RFC 8707 resource indicator), so a token
  minted for another service is refused here.
Its `scope` (or `scp`) values `reset:send`, `reset:redeem`, `reset:approve`,
`reset:contacts:read` become our scopes `send`, `redeem`, `approve`, `contacts:read`;
other values are ignored. A valid token without any
of them authenticates with no scope: tools answer the scope they need (403-like), not 401.

Verification never raises: a bad token, or an issuer we cannot reach, is None (the SDK
answers 401) and the reason is logged at debug level without the token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from mcp.server.auth.provider import AccessToken, TokenVerifier

from reset_mcp.keys import PREFIX as KEY_PREFIX
from reset_mcp.server.http.oauth_keys import IssuerError, IssuerKeys

log = logging.getLogger("reset_mcp.oauth")

# Asymmetric algorithms only, each with the key type it needs.
ALGORITHMS: Mapping[str, str] = {
    **{f"RS{n}": "RSA" for n in (256, 384, 512)},
    **{f"PS{n}": "RSA" for n in (256, 384, 512)},
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
    "EdDSA": "OKP",
}
SCOPE_MAP: Mapping[str, str] = {
    "reset:send": "send",
    "reset:redeem": "redeem",
    "reset:approve": "approve",
    "reset:contacts:read": "contacts:read",
}
OUR_ORDER = ("send", "redeem", "approve", "contacts:read")
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
LEEWAY_SECONDS = 30  # clock skew between the issuer and us
MAX_TOKEN_CHARS = 16 * 1024


class TokenRefused(Exception):
    """Why a token was refused, for the debug log; never shown to the caller."""


def our_scopes(claims: Mapping[str, Any]) -> list[str]:
    """`reset:*` values of `scope` (space separated, RFC 9068) or `scp` (a list or a string)."""
    granted: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        items: Iterable[Any] = value.split() if isinstance(value, str) else value if isinstance(value, list) else ()
        granted.update(SCOPE_MAP[v] for v in items if isinstance(v, str) and v in SCOPE_MAP)
    return [s for s in OUR_ORDER if s in granted]


def audiences(resource: str) -> list[str]:
    """The spellings of our resource a token's `aud` may use: with and without a final slash."""
    bare = resource.rstrip("/")
    return [bare, bare + "/"]


@dataclass
class JwtVerifier:
    """Verifies one issuer's JWT access tokens for one resource (this server's MCP URL)."""

    issuer: str
    resource: str
    keys: IssuerKeys

    async def verify(self, token: str) -> AccessToken | None:
        try:
            return await self._verify(token)
        except TokenRefused as exc:
            log.debug("OAuth token refused: %s", exc)
        except IssuerError as exc:
            log.warning("OAuth token not checked: issuer %s: %s", self.issuer, exc)
        except Exception:  # a library surprise must be a 401, not a 500 or a traceback to the client
            log.exception("OAuth token verification failed unexpectedly")
        return None

    async def _verify(self, token: str) -> AccessToken:
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenRefused("too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"not a JWT ({type(exc).__name__})") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise TokenRefused(f"algorithm {alg!r} is not accepted")
        if kid is not None and not isinstance(kid, str):
            raise TokenRefused("kid is not a string")
        candidates = [k for k in await self.keys.keys(kid) if k.get("kty") == ALGORITHMS[alg]]
        candidates = [k for k in candidates if k.get("alg") in (None, alg)]
        if not candidates:
            raise TokenRefused(f"no {alg} key {kid!r} in the issuer's key set")
        if kid is None and len(candidates) > 1:
            raise TokenRefused("no kid, and the issuer has several keys")
        claims = self._decode(token, jwt.PyJWK(candidates[0], algorithm=alg), alg)
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise TokenRefused("sub is not a string")
        client = claims.get("client_id") or claims.get("azp") or subject
        return AccessToken(
            token=token,
            client_id=str(client),
            scopes=our_scopes(claims),
            expires_at=int(claims["exp"]),
            resource=self.resource,
            subject=subject,
            claims={"iss": claims["iss"]},
        )

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audiences(self.resource),
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS, "strict_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise TokenRefused(f"{type(exc).__name__}: {exc}") from None


class KeysThenOAuth(TokenVerifier):
    """Our API keys first (an `rmcp_` token is only ever a key), then, if configured, OAuth JWTs."""

    def __init__(self, keys: TokenVerifier, oauth: JwtVerifier | None) -> None:
        self.api_keys = keys
        self.oauth = oauth

    async def verify_token(self, token: str) -> AccessToken | None:
        if token.startswith(KEY_PREFIX):
            return await self.api_keys.verify_token(token)
        if self.oauth is None:
            return None
        return await self.oauth.verify(token)
