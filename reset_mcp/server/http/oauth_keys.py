"""An OAuth issuer's signing keys: found from its metadata, fetched over HTTP, cached, rotated.

Discovery follows RFC 8414 §3.1 and OpenID Connect Discovery, in the order MCP clients
use: `/.well-known/oauth-authorization-server` (inserted before the issuer's path), then
`/.well-known/openid-configuration` (inserted, then appended). The document's `issuer`
must equal the configured issuer exactly (RFC 8414 §3.3), or it is not used: a
look-alike document cannot redirect us to someone else's keys. It names `jwks_uri`.

The key set is kept `cache_seconds`; a token naming a `kid` we do not hold fetches it
again at once (the issuer rotated its keys), but at most once per `refresh_floor`
seconds, so a stream of tokens with made-up `kid`s cannot become a stream of fetches.
When a fetch fails the keys already held keep serving. Every fetch has a timeout and a
size cap; no failure here raises anything but `IssuerError`, whose message is safe to log.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

log = logging.getLogger("reset_mcp.oauth")
FETCH_TIMEOUT = httpx.Timeout(5.0)
MAX_DOCUMENT_BYTES = 256 * 1024
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class IssuerError(Exception):
    """The issuer's metadata or keys could not be had; the message names what and where."""


def metadata_urls(issuer: str) -> list[str]:
    """Where the issuer's metadata may live, in the order MCP clients try them."""
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if not path:
        return [f"{origin}/.well-known/oauth-authorization-server", f"{origin}/.well-known/openid-configuration"]
    return [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}/.well-known/openid-configuration{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]


def _safe_url(url: object) -> str:
    if not isinstance(url, str):
        raise IssuerError("jwks_uri is missing from the issuer's metadata")
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and (parts.hostname or "") in LOOPBACK):
        return url
    raise IssuerError(f"jwks_uri {url!r} is not an https:// URL")


@dataclass
class IssuerKeys:
    """The signing keys (JWK dicts by `kid`) of one issuer."""

    issuer: str
    cache_seconds: float = 300.0
    refresh_floor: float = 30.0
    clock: Callable[[], float] = time.monotonic
    http: httpx.AsyncClient | None = None

    def __post_init__(self) -> None:
        self._jwks_uri: str | None = None
        self._keys: list[dict[str, Any]] = []
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._last_error = "not fetched yet"
        self._lock = anyio.Lock()
        self._own_http = self.http is None
        self.fetches = 0  # JWKS fetches, for tests and metrics

    async def aclose(self) -> None:
        if self._own_http and self.http is not None:
            await self.http.aclose()

    async def keys(self, kid: str | None) -> list[dict[str, Any]]:
        """The keys a token with this `kid` may be signed with (every signing key when it names none).

        Raises IssuerError only when no key has ever been fetched."""
        if self._fetched_at is None or self.clock() - self._fetched_at >= self.cache_seconds:
            await self._refresh()
        found = self._matching(kid)
        if not found and kid is not None:
            await self._refresh()  # rotation: the issuer may have published it since
            found = self._matching(kid)
        return found

    def _matching(self, kid: str | None) -> list[dict[str, Any]]:
        return [k for k in self._keys if kid is None or k.get("kid") == kid]

    async def _refresh(self) -> None:
        seen = self._tried_at
        async with self._lock:
            if self._tried_at != seen:
                return  # the request we waited behind has just fetched (or tried)
            now = self.clock()
            if self._tried_at is not None and now - self._tried_at < self.refresh_floor:
                if not self._keys:
                    raise IssuerError(self._last_error)
                return
            self._tried_at = now
            try:
                self._keys = await self._fetch_keys()
                self._fetched_at = self.clock()
            except IssuerError as exc:
                self._last_error = str(exc)
                if not self._keys:
                    raise
                log.warning("OAuth issuer %s: %s; the keys fetched before still serve", self.issuer, exc)

    async def _fetch_keys(self) -> list[dict[str, Any]]:
        if self._jwks_uri is None:
            self._jwks_uri = await self.discover()
        self.fetches += 1
        document = await self._get_json(self._jwks_uri)
        raw = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(raw, list):
            raise IssuerError(f"{self._jwks_uri} is not a JWK Set (no 'keys' list)")
        keys = [k for k in raw if isinstance(k, dict) and isinstance(k.get("kty"), str) and k.get("use") != "enc"]
        if not keys:
            raise IssuerError(f"{self._jwks_uri} holds no signing keys")
        return keys

    async def discover(self) -> str:
        """The issuer's `jwks_uri`, from the first metadata document that answers."""
        misses = []
        for url in metadata_urls(self.issuer):
            try:
                document = await self._get_json(url)
            except IssuerError as exc:
                misses.append(str(exc))
                continue
            if not isinstance(document, dict):
                misses.append(f"{url}: not a JSON object")
                continue
            if document.get("issuer") != self.issuer:
                # RFC 8414 §3.3: a document naming another issuer must not be used.
                raise IssuerError(f"{url} names the issuer {document.get('issuer')!r}, not {self.issuer!r}")
            return _safe_url(document.get("jwks_uri"))
        raise IssuerError("no authorization server metadata found: " + "; ".join(misses))

    async def _get_json(self, url: str) -> Any:
        if self.http is None:
            self.http = httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False)
        try:
            async with self.http.stream("GET", url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise IssuerError(f"{url}: HTTP {response.status_code}")
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise IssuerError(f"{url}: larger than {MAX_DOCUMENT_BYTES} bytes")
        except httpx.HTTPError as exc:
            raise IssuerError(f"{url}: {type(exc).__name__}") from None
        try:
            return json.loads(body)
        except ValueError:
            raise IssuerError(f"{url}: not JSON") from None
