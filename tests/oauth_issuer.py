"""A local OAuth issuer on loopback for the resource-server tests: real metadata, a real JWKS.

It serves RFC 8414 authorization-server metadata (or only OpenID discovery) and a JWK Set
of keys generated with `cryptography`, and mints access tokens with PyJWT. It issues no
tokens over HTTP: a test mints what a real issuer would have handed a client, including
what a real issuer must never hand out (wrong audience, expired, foreign key), and asks
the server under test what it makes of them.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.httpserver import free_port

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class SigningKey:
    kid: str
    private: PrivateKey
    alg: str  # what the JWK advertises; "" leaves `alg` out of the JWK (the token then says)

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        kind = jwt.algorithms.RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else jwt.algorithms.ECAlgorithm
        data: dict[str, Any] = json.loads(kind.to_jwk(public))
        data.update({"kid": self.kid, "use": "sig"})
        if self.alg:
            data["alg"] = self.alg
        return data


def ec_key(kid: str | None = None) -> SigningKey:
    return SigningKey(kid or secrets.token_hex(4), ec.generate_private_key(ec.SECP256R1()), "ES256")


def rsa_key(kid: str | None = None, alg: str = "") -> SigningKey:
    return SigningKey(kid or secrets.token_hex(4), rsa.generate_private_key(public_exponent=65537, key_size=2048), alg)


@dataclass
class Issuer:
    """A running issuer: its URL, its published keys, and what it was asked."""

    url: str
    audience: str = ""
    keys: list[SigningKey] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)
    claimed_issuer: str | None = None  # what the metadata says; None: the truth
    serve: tuple[str, ...] = ("oauth-authorization-server",)

    def rotate(self, new: SigningKey, *, keep_old: bool = False) -> None:
        self.keys = [*self.keys, new] if keep_old else [new]

    def mint(
        self,
        *,
        key: SigningKey | None = None,
        alg: str | None = None,
        kid: str | None = "",
        headers: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        **claims: Any,
    ) -> str:
        """A signed access token; claims default to a good one for `audience` with reset:send."""
        key = key or self.keys[0]
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.url,
            "sub": "user-123",
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
            "client_id": "test-client",
            "scope": "reset:send",
            "jti": secrets.token_hex(8),
        }
        body.update(claims)
        for name in drop:
            body.pop(name, None)
        header = {"kid": key.kid if kid == "" else kid, "typ": "at+jwt", **(headers or {})}
        if header["kid"] is None:
            del header["kid"]
        return jwt.encode(body, key.private, algorithm=alg or key.alg or "RS256", headers=header)

    def app(self) -> Starlette:
        def counted(name: str) -> None:
            self.hits[name] = self.hits.get(name, 0) + 1

        def metadata(kind: str):  # type: ignore[no-untyped-def]
            async def handler(request: Request) -> Response:
                counted(kind)
                if kind not in self.serve:
                    return Response(status_code=404)
                return JSONResponse(
                    {
                        "issuer": self.claimed_issuer or self.url,
                        "jwks_uri": f"{self.origin}/jwks",
                        "authorization_endpoint": f"{self.url}/authorize",
                        "token_endpoint": f"{self.url}/token",
                        "response_types_supported": ["code"],
                        "code_challenge_methods_supported": ["S256"],
                        "scopes_supported": ["reset:send", "reset:redeem", "reset:approve", "reset:contacts:read"],
                    }
                )

            return handler

        async def jwks(request: Request) -> Response:
            counted("jwks")
            return JSONResponse({"keys": [k.jwk() for k in self.keys]})

        path = self.url.removeprefix(self.origin)
        return Starlette(
            routes=[
                Route(f"/.well-known/oauth-authorization-server{path}", metadata("oauth-authorization-server")),
                Route(f"/.well-known/openid-configuration{path}", metadata("openid-configuration")),
                Route(f"{path}/.well-known/openid-configuration", metadata("openid-configuration-appended")),
                Route("/jwks", jwks),
            ]
        )

    @property
    def origin(self) -> str:
        return self.url.split("/", 3)[0] + "//" + self.url.split("/", 3)[2]


@contextmanager
def running_issuer(path: str = "", **options: Any) -> Iterator[Issuer]:
    """An issuer on a free loopback port, e.g. http://127.0.0.1:PORT or .../realms/acme with `path`."""
    port = free_port()
    issuer = Issuer(f"http://127.0.0.1:{port}{path}", keys=[ec_key("first")], **options)
    server = uvicorn.Server(uvicorn.Config(issuer.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"issuer-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test issuer did not start")
        time.sleep(0.02)
    try:
        yield issuer
    finally:
        server.should_exit = True
        thread.join(timeout=10)
