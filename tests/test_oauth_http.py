"""OAuth through a real streamable-HTTP server: what an OAuth client discovers, and what it may do.

The server is today's `build_http_app` with the wiring of reset_mcp.server.oauth_wiring
put in by patching two names (`build_server` gets `mcp_auth(...)`'s verifier and
AuthSettings; `build_routes` gets its metadata routes first). That is exactly the change
http.py needs (see /work/notes/i23-status.md); once made, `wired` goes and these tests
run on the server as it is.

Discovery is walked with the SDK client's own helpers (mcp.client.auth.utils), as an
OAuth client such as the Inspector walks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    extract_resource_metadata_from_www_auth,
    get_client_metadata_scopes,
    handle_auth_metadata_response,
    handle_protected_resource_response,
    validate_metadata_issuer,
)

from reset_mcp.config import Settings, load_settings
from reset_mcp.server import http
from reset_mcp.server.oauth_wiring import mcp_auth
from tests.conftest import SECRET, reset_args
from tests.httpserver import RunningServer, mcp_client, running_server
from tests.oauth_issuer import Issuer, running_issuer

SEND_TOOLS_SAMPLE = {"request_password_reset", "check_reset_abuse", "preview_email"}
REDEEM_TOOLS = {"verify_reset_token", "consume_reset_token", "report_unrequested_reset"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def make_settings(data_dir: Path, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": data_dir,
        "secret": SECRET,
        "email_backend": "outbox",
        "from_address": "auth@acme.test",
        "worker_poll_seconds": 0.2,
    }
    return load_settings(**{**base, **over})


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch) -> None:
    """Today's build_http_app with mcp_auth() in place of its KeyVerifier + AuthSettings."""
    real_build_server, real_build_routes = http.build_server, http.build_routes
    made: dict[str, Any] = {}

    def build_server(lend_app: Any, *, token_verifier: Any, auth: Any, **kwargs: Any) -> Any:
        # build_http_app was handed the settings (with the test's port) and put their base
        # URL into auth.resource_server_url; that and the settings it read give mcp_auth's input.
        url = urlsplit(str(auth.resource_server_url))
        settings = made["settings"].model_copy(update={"http_port": url.port})
        made["auth"] = wiring = mcp_auth(settings, token_verifier, url.path)
        return real_build_server(lend_app, token_verifier=wiring.verifier, auth=wiring.settings, **kwargs)

    def build_routes(*args: Any, **kwargs: Any) -> Any:
        return [*made["auth"].routes, *real_build_routes(*args, **kwargs)]

    real_transport_security = http.transport_security

    def transport_security(settings: Settings) -> Any:
        made["settings"] = settings
        return real_transport_security(settings)

    monkeypatch.setattr(http, "build_server", build_server)
    monkeypatch.setattr(http, "build_routes", build_routes)
    monkeypatch.setattr(http, "transport_security", transport_security)


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


@pytest.fixture
def oauth_server(wired: None, issuer: Issuer, tmp_path: Path) -> Iterator[RunningServer]:
    settings = make_settings(tmp_path / "data", oauth_issuer=issuer.url)
    with running_server(settings, {"agent": ["send"]}) as server:
        issuer.audience = f"{server.url}/mcp"
        yield server


@pytest.fixture
def keys_only_server(wired: None, tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(make_settings(tmp_path / "data"), {"agent": ["send"]}) as server:
        yield server


async def discover(server: RunningServer) -> tuple[httpx2.Response, list[tuple[str, int]], Any, Any]:
    """What the SDK's OAuth client does after a 401: protected-resource, then issuer metadata."""
    tried: list[tuple[str, int]] = []
    async with httpx2.AsyncClient() as client:
        refused = await client.post(f"{server.url}/mcp", json=INIT, headers=MCP_HEADERS)
        pointer = extract_resource_metadata_from_www_auth(refused)
        prm = None
        for url in build_protected_resource_metadata_discovery_urls(pointer, f"{server.url}/mcp"):
            answer = await client.get(url)
            tried.append((url, answer.status_code))
            prm = await handle_protected_resource_response(answer)
            if prm is not None:
                break
        if prm is None:
            return refused, tried, None, None
        issuer_url = str(prm.authorization_servers[0])
        for url in build_oauth_authorization_server_metadata_discovery_urls(issuer_url, f"{server.url}/mcp"):
            answer = await client.get(url)
            tried.append((url, answer.status_code))
            _, asm = await handle_auth_metadata_response(answer)
            if asm is not None:
                validate_metadata_issuer(asm, issuer_url)  # RFC 8414 §3.3, as the client checks it
                return refused, tried, prm, asm
        return refused, tried, prm, None


async def test_keys_only_serves_no_oauth_metadata_and_points_to_none(keys_only_server: RunningServer) -> None:
    refused, tried, prm, _ = await discover(keys_only_server)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer ")
    assert "resource_metadata" not in refused.headers["www-authenticate"]
    assert prm is None and tried and all(status == 404 for _, status in tried)
    async with httpx2.AsyncClient() as client:
        assert (await client.get(f"{keys_only_server.url}/.well-known/oauth-authorization-server")).status_code == 404
    async with mcp_client(keys_only_server.url, keys_only_server.key("agent")) as agent:
        assert {t.name for t in (await agent.list_tools()).tools} >= SEND_TOOLS_SAMPLE


async def test_an_oauth_client_finds_the_real_issuer_and_our_scopes(
    oauth_server: RunningServer, issuer: Issuer
) -> None:
    refused, tried, prm, asm = await discover(oauth_server)
    assert refused.status_code == 401
    metadata_url = f"{oauth_server.url}/.well-known/oauth-protected-resource/mcp"
    assert f'resource_metadata="{metadata_url}"' in refused.headers["www-authenticate"]
    assert tried[0] == (metadata_url, 200)
    assert str(prm.resource) == f"{oauth_server.url}/mcp"
    assert [str(a) for a in prm.authorization_servers] == [issuer.url]
    assert prm.scopes_supported == ["reset:send", "reset:redeem", "reset:approve"]
    assert asm is not None and str(asm.issuer) == issuer.url
    assert get_client_metadata_scopes(None, prm, asm) == "reset:send reset:redeem reset:approve"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_access_tokens_work_by_their_scopes_beside_keys(
    oauth_server: RunningServer, issuer: Issuer, mode: str
) -> None:
    async with mcp_client(oauth_server.url, issuer.mint(scope="reset:send"), mode=mode) as agent:
        tools = {t.name for t in (await agent.list_tools()).tools}
        assert tools >= SEND_TOOLS_SAMPLE and not tools & REDEEM_TOOLS
        sent = await agent.call_tool("request_password_reset", reset_args(email=f"oauth-{mode}@example.com"))
        assert not sent.is_error and sent.structured_content["status"] == "sent"
    async with mcp_client(oauth_server.url, issuer.mint(scope="reset:redeem"), mode=mode) as app:
        assert {t.name for t in (await app.list_tools()).tools} == REDEEM_TOOLS
        refused = await app.call_tool("request_password_reset", reset_args())
        assert refused.is_error and "'send' scope" in refused.content[0].text
    async with mcp_client(oauth_server.url, oauth_server.key("agent"), mode=mode) as keyed:
        assert {t.name for t in (await keyed.list_tools()).tools} >= SEND_TOOLS_SAMPLE


async def test_bad_access_tokens_are_401(oauth_server: RunningServer, issuer: Issuer) -> None:
    from tests.oauth_issuer import ec_key

    bad = {
        "another audience": issuer.mint(aud="https://other.example.com/mcp"),
        "expired": issuer.mint(exp=1_000_000_000, iat=999_999_000),
        "another issuer": issuer.mint(iss="https://evil.example.com"),
        "a foreign key": issuer.mint(key=ec_key(issuer.keys[0].kid)),
        "a revoked-looking key": "rmcp_abcdefgh_not-a-key",
    }
    async with httpx2.AsyncClient() as client:
        for why, token in bad.items():
            answer = await client.post(
                f"{oauth_server.url}/mcp", json=INIT, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 401, why
            assert "resource_metadata=" in answer.headers["www-authenticate"], why
        good = await client.post(
            f"{oauth_server.url}/mcp", json=INIT, headers={**MCP_HEADERS, "Authorization": f"Bearer {issuer.mint()}"}
        )
        assert good.status_code == 200
