"""The OAuth resource server's verifier against a real issuer on loopback (tests/oauth_issuer.py).

Each token is one a client could present: a good one, and each way one must be refused.
Keys (`rmcp_...`) keep working beside OAuth; without an issuer no JWT is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from mcp.server.auth.provider import AccessToken

from reset_mcp.server.http.oauth import JwtVerifier, KeysThenOAuth, our_scopes
from reset_mcp.server.http.oauth_keys import IssuerKeys, metadata_urls
from reset_mcp.server.mcp.caller import principal_of
from tests.httpserver import free_port
from tests.oauth_issuer import Issuer, ec_key, rsa_key, running_issuer

RESOURCE = "http://127.0.0.1:8765/mcp"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer(audience=RESOURCE) as running:
        yield running


def verifier_for(issuer: Issuer, **options: float) -> JwtVerifier:
    return JwtVerifier(issuer.url, RESOURCE, IssuerKeys(issuer.url, **options))


async def test_a_good_token_gives_our_scopes_and_who_holds_it(issuer: Issuer) -> None:
    verifier = verifier_for(issuer)
    token = issuer.mint(scope="openid reset:send reset:redeem profile")
    access = await verifier.verify(token)
    assert access is not None
    assert access.scopes == ["send", "redeem"]
    assert access.subject == "user-123" and access.client_id == "test-client"
    assert access.resource == RESOURCE and access.expires_at is not None
    assert principal_of(access) == "oauth:user-123"
    assert issuer.hits == {"oauth-authorization-server": 1, "jwks": 1}
    assert await verifier.verify(issuer.mint()) is not None
    assert issuer.hits["jwks"] == 1  # cached


async def test_rsa_keys_with_and_without_alg_in_the_jwk(issuer: Issuer) -> None:
    with_alg, bare = rsa_key(alg="RS256"), rsa_key(alg="")
    issuer.rotate(with_alg)
    issuer.rotate(bare, keep_old=True)
    verifier = verifier_for(issuer)
    assert await verifier.verify(issuer.mint(key=with_alg)) is not None
    assert await verifier.verify(issuer.mint(key=bare, alg="PS256")) is not None  # the JWK lets the token say
    assert await verifier.verify(issuer.mint(key=with_alg, alg="PS256")) is None  # the JWK says RS256 only


@pytest.mark.parametrize(
    ("aud", "accepted"),
    [
        (RESOURCE, True),
        (RESOURCE + "/", True),
        (["https://other.example.com", RESOURCE], True),
        ("https://other.example.com/mcp", False),
        ("http://127.0.0.1:8766/mcp", False),
        ([], False),
    ],
)
async def test_the_audience_must_name_this_server(issuer: Issuer, aud: object, accepted: bool) -> None:
    assert (await verifier_for(issuer).verify(issuer.mint(aud=aud)) is not None) is accepted


async def test_another_issuer_expired_or_not_yet_valid_is_refused(issuer: Issuer) -> None:
    verifier = verifier_for(issuer)
    now = int(time.time())
    assert await verifier.verify(issuer.mint(iss="https://evil.example.com")) is None
    assert await verifier.verify(issuer.mint(iss=issuer.url + "/")) is None  # issuers compare exactly
    assert await verifier.verify(issuer.mint(exp=now - 120, iat=now - 600)) is None
    assert await verifier.verify(issuer.mint(nbf=now + 600)) is None
    assert await verifier.verify(issuer.mint(iat=now + 600, exp=now + 900)) is None


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "aud", "sub"])
async def test_each_required_claim_is_required(issuer: Issuer, claim: str) -> None:
    assert await verifier_for(issuer).verify(issuer.mint(drop=(claim,))) is None


async def test_a_token_signed_by_another_key_is_refused(issuer: Issuer) -> None:
    impostor = ec_key(kid=issuer.keys[0].kid)  # same kid, another private key
    verifier = verifier_for(issuer)
    assert await verifier.verify(issuer.mint(key=impostor)) is None
    assert await verifier.verify(issuer.mint()) is not None


async def test_none_and_hmac_with_the_public_key_are_refused(issuer: Issuer) -> None:
    verifier = verifier_for(issuer)
    good = issuer.mint()
    header, payload, _ = good.split(".")
    unsigned = jwt.encode(jwt.decode(good, options={"verify_signature": False}), None, algorithm="none")
    assert await verifier.verify(unsigned) is None
    pem = (
        issuer.keys[0]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    # PyJWT will not sign that itself; an attacker would, by hand.
    forged_header = _b64(json.dumps({"alg": "HS256", "kid": issuer.keys[0].kid}).encode())
    mac = hmac.new(pem, f"{forged_header}.{payload}".encode(), hashlib.sha256).digest()
    assert await verifier.verify(f"{forged_header}.{payload}.{_b64(mac)}") is None
    assert await verifier.verify(f"{header}.{payload}.") is None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_garbage_never_raises(issuer: Issuer) -> None:
    verifier = verifier_for(issuer)
    for token in ["", "x", "a.b.c", "e30.e30.", "eyJhbGciOiJFUzI1NiJ9." + "A" * 40000, "\u00e9.\u00e9.\u00e9"]:
        assert await verifier.verify(token) is None
    assert await verifier.verify(issuer.mint(kid=None)) is not None  # one key: no kid needed
    _, payload, signature = issuer.mint().split(".")
    odd_kid = _b64(json.dumps({"alg": "ES256", "kid": ["not", "a", "string"]}).encode())
    assert await verifier.verify(f"{odd_kid}.{payload}.{signature}") is None


def test_scopes_map_from_scope_or_scp() -> None:
    assert our_scopes({"scope": "reset:approve reset:send other"}) == ["send", "approve"]
    assert our_scopes({"scp": ["reset:contacts:read"]}) == ["contacts:read"]
    assert our_scopes({"scp": ["reset:redeem", "x"]}) == ["redeem"]
    assert our_scopes({"scp": "reset:redeem"}) == ["redeem"]
    assert our_scopes({"scope": "send redeem approve"}) == []  # ours only under their reset: names
    assert our_scopes({"scope": 42}) == []


async def test_a_valid_token_without_our_scopes_authenticates_with_none(issuer: Issuer) -> None:
    access = await verifier_for(issuer).verify(issuer.mint(scope="openid email"))
    assert access is not None and access.scopes == []


async def test_rotation_an_unknown_kid_fetches_the_keys_again(issuer: Issuer) -> None:
    verifier = verifier_for(issuer, refresh_floor=0)
    assert await verifier.verify(issuer.mint()) is not None
    new = ec_key("second")
    issuer.rotate(new)
    assert await verifier.verify(issuer.mint(key=new)) is not None
    assert issuer.hits["jwks"] == 2
    assert await verifier.verify(issuer.mint(key=ec_key("first"))) is None  # the retired kid, now a stranger


async def test_made_up_kids_cost_one_fetch_per_floor(issuer: Issuer) -> None:
    now = [1000.0]
    verifier = JwtVerifier(issuer.url, RESOURCE, IssuerKeys(issuer.url, refresh_floor=30, clock=lambda: now[0]))
    assert await verifier.verify(issuer.mint()) is not None
    strangers = [issuer.mint(key=ec_key()) for _ in range(20)]
    for token in strangers:
        assert await verifier.verify(token) is None
    assert issuer.hits["jwks"] == 1  # inside the floor: no fetch at all
    now[0] += 31
    for token in strangers:
        assert await verifier.verify(token) is None
    assert issuer.hits["jwks"] == 2


async def test_the_key_set_is_fetched_again_when_the_cache_ends(issuer: Issuer) -> None:
    now = [1000.0]
    verifier = JwtVerifier(issuer.url, RESOURCE, IssuerKeys(issuer.url, cache_seconds=300, clock=lambda: now[0]))
    assert await verifier.verify(issuer.mint()) is not None
    now[0] += 299
    assert await verifier.verify(issuer.mint()) is not None and issuer.hits["jwks"] == 1
    now[0] += 2
    assert await verifier.verify(issuer.mint()) is not None and issuer.hits["jwks"] == 2


async def test_keys_fetched_before_serve_while_the_issuer_is_down(issuer: Issuer) -> None:
    now = [1000.0]
    verifier = JwtVerifier(issuer.url, RESOURCE, IssuerKeys(issuer.url, cache_seconds=10, clock=lambda: now[0]))
    assert await verifier.verify(issuer.mint()) is not None
    original = issuer.keys[0]
    issuer.keys = []  # a broken JWKS answer: no keys
    now[0] += 60
    assert await verifier.verify(issuer.mint(key=original)) is not None
    assert issuer.hits["jwks"] == 2  # it did ask, and kept what it had


def test_metadata_urls_follow_rfc_8414_then_openid() -> None:
    assert metadata_urls("https://idp.example.com") == [
        "https://idp.example.com/.well-known/oauth-authorization-server",
        "https://idp.example.com/.well-known/openid-configuration",
    ]
    assert metadata_urls("https://idp.example.com/realms/acme") == [
        "https://idp.example.com/.well-known/oauth-authorization-server/realms/acme",
        "https://idp.example.com/.well-known/openid-configuration/realms/acme",
        "https://idp.example.com/realms/acme/.well-known/openid-configuration",
    ]


@pytest.mark.parametrize("served", ["openid-configuration", "openid-configuration-appended"])
async def test_an_openid_issuer_with_a_path_is_found(served: str) -> None:
    with running_issuer("/realms/acme", audience=RESOURCE, serve=(served,)) as issuer:
        access = await verifier_for(issuer).verify(issuer.mint())
        assert access is not None
        assert issuer.hits[served] == 1


async def test_metadata_naming_another_issuer_is_not_used(caplog: pytest.LogCaptureFixture) -> None:
    with running_issuer(audience=RESOURCE, claimed_issuer="https://evil.example.com") as issuer:
        with caplog.at_level(logging.WARNING, logger="reset_mcp.oauth"):
            assert await verifier_for(issuer).verify(issuer.mint()) is None
        assert "jwks" not in issuer.hits
        assert "names the issuer 'https://evil.example.com'" in caplog.text
        assert issuer.mint() not in caplog.text  # a token is never logged


async def test_an_unreachable_issuer_is_a_quick_refusal() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    verifier = JwtVerifier(url, RESOURCE, IssuerKeys(url))
    token = Issuer(url, audience=RESOURCE, keys=[ec_key()]).mint()
    started = time.monotonic()
    assert await verifier.verify(token) is None
    assert await verifier.verify(token) is None  # inside the floor: not even tried again
    assert time.monotonic() - started < 5


class FakeKeys:
    """Stands for the API-key verifier: knows one key."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def verify_token(self, token: str) -> AccessToken | None:
        self.asked.append(token)
        return AccessToken(token=token, client_id="abcd1234", scopes=["send"]) if token == "rmcp_good" else None


async def test_keys_first_then_oauth_and_no_jwt_without_an_issuer(issuer: Issuer) -> None:
    keys = FakeKeys()
    both = KeysThenOAuth(keys, verifier_for(issuer))
    key_access = await both.verify_token("rmcp_good")
    assert key_access is not None and principal_of(key_access) == "key:abcd1234"
    assert await both.verify_token("rmcp_bad") is None
    assert issuer.hits == {}  # a key is never sent to the issuer's path
    assert await both.verify_token(issuer.mint()) is not None
    assert keys.asked == ["rmcp_good", "rmcp_bad"]  # a JWT never reaches the key store
    keys_only = KeysThenOAuth(keys, None)
    assert await keys_only.verify_token(issuer.mint()) is None
    assert await keys_only.verify_token("rmcp_good") is not None


def test_the_issuer_metadata_is_json_a_client_can_read(issuer: Issuer) -> None:
    import httpx

    document = httpx.get(f"{issuer.url}/.well-known/oauth-authorization-server").json()
    assert document["issuer"] == issuer.url and document["jwks_uri"].endswith("/jwks")
    assert json.dumps(httpx.get(document["jwks_uri"]).json()["keys"][0]).count('"kid"') == 1


async def test_concurrent_first_tokens_share_one_fetch(issuer: Issuer) -> None:
    import anyio

    verifier = verifier_for(issuer)
    results: list[AccessToken | None] = []

    async def one() -> None:
        results.append(await verifier.verify(issuer.mint()))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(one)
    assert len(results) == 20 and all(r is not None for r in results)
    assert issuer.hits == {"oauth-authorization-server": 1, "jwks": 1}


def test_oauth_settings_are_checked_at_start() -> None:
    from reset_mcp.config import load_settings
    from reset_mcp.errors import ConfigError

    settings = load_settings(oauth_issuer="https://idp.example.com", public_url="https://reset.example.com/")
    assert settings.effective_oauth_audience == "https://reset.example.com/mcp"
    assert load_settings(http_host="::1", http_port=9000).effective_oauth_audience == "http://[::1]:9000/mcp"
    for bad in ("http://idp.example.com", "https://idp.example.com/?tenant=1", "idp.example.com"):
        with pytest.raises(ConfigError, match="RESET_MCP_OAUTH_ISSUER"):
            load_settings(oauth_issuer=bad)
    with pytest.raises(ConfigError, match="RESET_MCP_OAUTH_JWKS_CACHE_SECONDS"):
        load_settings(oauth_jwks_cache_seconds=-1)
