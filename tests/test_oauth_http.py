"""OAuth through a real streamable-HTTP server: what an OAuth client discovers, and what it may do.

The server is `build_http_app` as `serve` runs it (server/http/oauth_wiring.py's
`mcp_auth` wired in), behind a real uvicorn on loopback.

Discovery is walked with the SDK client's own helpers (mcp.client.auth.utils), as an
OAuth client such as the Inspector walks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
def issuer() -> Iterator[Issuer]:
    with running_issuer() as running:
        yield running


@pytest.fixture
def oauth_server(issuer: Issuer, tmp_path: Path) -> Iterator[RunningServer]:
    settings = make_settings(tmp_path / "data", oauth_issuer=issuer.url)
    with running_server(settings, {"agent": ["send"]}) as server:
        issuer.audience = f"{server.url}/mcp"
        yield server


@pytest.fixture
def keys_only_server(tmp_path: Path) -> Iterator[RunningServer]:
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
    assert prm.scopes_supported == ["reset:send", "reset:redeem", "reset:approve", "reset:contacts:read"]
    assert asm is not None and str(asm.issuer) == issuer.url
    assert get_client_metadata_scopes(None, prm, asm) == "reset:send reset:redeem reset:approve reset:contacts:read"


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


@pytest.fixture
def gated_oauth_server(issuer: Issuer, tmp_path: Path) -> Iterator[RunningServer]:
    settings = make_settings(tmp_path / "data", oauth_issuer=issuer.url, oversight_mode="gated")
    with running_server(settings, {"admin": ["approve"]}) as server:
        issuer.audience = f"{server.url}/mcp"
        yield server


async def test_rest_takes_access_tokens_by_their_scopes_and_the_four_eyes_rule_holds(
    gated_oauth_server: RunningServer, issuer: Issuer
) -> None:
    server = gated_oauth_server
    alice = issuer.mint(sub="alice", scope="reset:send reset:approve")
    async with mcp_client(server.url, alice) as agent:
        held = (await agent.call_tool("request_password_reset", reset_args(email="o@example.com"))).structured_content
    assert held["status"] == "pending_approval"
    base = f"{server.url}/v1/approvals"
    async with httpx2.AsyncClient() as client:

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        listed = (await client.get(base, headers=bearer(alice))).json()
        assert [a["requested_by"] for a in listed["approvals"]] == ["oauth:alice"]
        # The same person through another client (another client_id) is still the requester.
        again = issuer.mint(sub="alice", client_id="other-client", scope="reset:approve")
        refused = await client.post(f"{base}/{held['approval_id']}/approve", headers=bearer(again))
        assert refused.status_code == 403 and "credentials" in refused.json()["error"]
        no_scope = await client.get(base, headers=bearer(issuer.mint(sub="bob", scope="reset:send")))
        assert no_scope.status_code == 403
        assert no_scope.json()["error"] == "this access token lacks the 'approve' scope"
        wrong = await client.get(base, headers=bearer(issuer.mint(aud="https://other.example.com/mcp")))
        assert wrong.status_code == 401
        bob = issuer.mint(sub="bob", scope="reset:approve")
        approved = await client.post(f"{base}/{held['approval_id']}/approve", headers=bearer(bob))
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        verify = await client.post(
            f"{server.url}/v1/tokens/verify", json={"token": "x"}, headers=bearer(issuer.mint(scope="reset:redeem"))
        )
        assert verify.status_code == 200 and verify.json()["valid"] is False
        keyed = await client.get(base, headers=server.auth("admin"))
        assert keyed.status_code == 200
