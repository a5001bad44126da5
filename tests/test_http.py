"""HTTP transports against a real uvicorn server on loopback: keys and scopes, tools/list per
caller in both protocol eras, REST callbacks and admin approvals, health, metrics, SSE,
stateless mode, DNS-rebinding refusals, and the refusal to bind publicly without keys."""

from __future__ import annotations

import argparse
import email
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from reset_mcp.app import build_app
from reset_mcp.cli.keys import run_keys
from reset_mcp.cli.main import serve_settings
from reset_mcp.config import Settings, load_settings
from reset_mcp.errors import InvalidInputError
from reset_mcp.keys import create_key, hash_secret, verify_key
from reset_mcp.policy.throttle import ClientThrottle
from reset_mcp.server.http.app import build_http_app
from reset_mcp.server.serve import serve
from tests.conftest import CHROME_UA, SECRET, reset_args, text_of_eml, token_from_text
from tests.httpserver import RunningServer, make_keys, mcp_client, running_server, sse_mcp_client

ALL_TOOLS = {
    "request_password_reset", "verify_reset_token", "consume_reset_token", "revoke_reset_tokens",
    "report_unrequested_reset", "check_reset_abuse", "send_security_alert", "record_contact_event", "get_contact",
    "list_pending_sends", "get_send_status", "get_delivery_status", "preview_email",
}  # fmt: skip
REDEEM_TOOLS = {"verify_reset_token", "consume_reset_token", "report_unrequested_reset"}
KEYS = {"agent": ["send"], "app": ["redeem"], "admin": ["approve"], "both": ["send", "redeem"], "doomed": ["send"]}
ERAS = ["legacy", "auto"]  # handshake era, and the modern era the client negotiates by default


def make_settings(data_dir: Path, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": data_dir, "secret": SECRET, "email_backend": "outbox", "from_address": "auth@acme.test",
        "product_name": "Acme", "worker_poll_seconds": 0.2,
    }  # fmt: skip
    return load_settings(**{**base, **over})


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(make_settings(tmp_path_factory.mktemp("http")), KEYS) as server:
        yield server


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = make_settings(tmp_path_factory.mktemp("gated"), oversight_mode="gated")
    with running_server(settings, {"agent": ["send"], "admin": ["approve"], "dual": ["send", "approve"]}) as server:
        yield server


def reset_token_for(settings: Settings, recipient: str) -> str:
    for path in sorted(settings.effective_outbox_dir.glob("*-password_reset-*.eml")):
        if email.message_from_bytes(path.read_bytes())["To"] == recipient:
            return token_from_text(text_of_eml(path))
    raise AssertionError(f"no reset email to {recipient}")


def names(tools: Any) -> set[str]:
    return {t.name for t in tools.tools}


# --- keys -----------------------------------------------------------------------------


async def test_keys_store_only_a_hash_and_refuse_wrong_or_revoked(tmp_path: Path) -> None:
    async with build_app(make_settings(tmp_path)) as app, app.store.transaction() as tx:
        plaintext, record = await create_key(tx, "agent", ["redeem", "send", "send"], app.clock.now())
        assert plaintext.startswith(f"rmcp_{record.id}_") and record.scopes == ("send", "redeem")
        secret = plaintext.removeprefix(f"rmcp_{record.id}_")
        stored = await tx.get_api_key(record.id)
        assert stored is not None and stored.secret_hash == hash_secret(secret) and secret not in str(stored)
        assert (await verify_key(tx, plaintext)) == stored
        for wrong in (
            plaintext[:-1] + ("B" if plaintext.endswith("A") else "A"),
            "rmcp_nosuchid_" + secret,
            "Bearer x",
            "",
            "rmcp_" + "a" * 300,
        ):
            assert await verify_key(tx, wrong) is None
        await tx.revoke_api_key(record.id, app.clock.now())
        assert await verify_key(tx, plaintext) is None
        for bad_scopes in ([], ["admin"]):
            with pytest.raises(InvalidInputError, match="scope"):
                await create_key(tx, "x", bad_scopes, app.clock.now())
        with pytest.raises(InvalidInputError, match="name"):
            await create_key(tx, "line\nbreak", ["send"], app.clock.now())


def test_keys_cli_prints_the_key_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(tmp_path)
    assert run_keys(settings, argparse.Namespace(action="create", scope=["send"], name="my agent")) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("rmcp_") and "\n" not in key and "not be shown again" in err
    key_id = key.split("_")[1]
    assert run_keys(settings, argparse.Namespace(action="list")) == 0
    listing, _ = capsys.readouterr()
    assert key_id in listing and "my agent" in listing and "send" in listing and key.split("_", 2)[2] not in listing
    assert run_keys(settings, argparse.Namespace(action="revoke", id=key_id)) == 0
    assert run_keys(settings, argparse.Namespace(action="revoke", id="nosuchid")) == 1
    capsys.readouterr()
    assert run_keys(settings, argparse.Namespace(action="list")) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(key_id))
    assert row.split()[-1].endswith("Z")  # the REVOKED column now holds a time


# --- MCP over streamable HTTP -----------------------------------------------------------


def test_mcp_without_a_valid_key_is_401(srv: RunningServer, tmp_path: Path) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    revoke = argparse.Namespace(action="revoke", id=srv.key_id("doomed"))
    for headers in ({}, {"Authorization": "Bearer rmcp_wrongkey_x"}, {"Authorization": "Basic abc"}, "revoked"):
        if headers == "revoked":
            assert run_keys(srv.settings, revoke) == 0  # another process revokes it: effective at once
            headers = srv.auth("doomed")
        r = httpx.post(f"{srv.url}/mcp", json=body, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("mode", ERAS)
async def test_tools_list_follows_the_keys_scopes(srv: RunningServer, mode: str) -> None:
    seen = {}
    for name in ("agent", "app", "admin", "both"):
        async with mcp_client(srv.url, srv.key(name), mode=mode) as client:
            seen[name] = names(await client.list_tools())
    assert seen["agent"] == ALL_TOOLS - REDEEM_TOOLS
    assert seen["app"] == REDEEM_TOOLS
    assert seen["admin"] == set()  # approve is for humans over REST; no MCP tool can approve
    assert seen["both"] == ALL_TOOLS


@pytest.mark.parametrize("mode", ERAS)
async def test_a_missing_scope_is_a_tool_error_naming_it(srv: RunningServer, mode: str) -> None:
    async with mcp_client(srv.url, srv.key("agent"), mode=mode) as agent:
        result = await agent.call_tool("verify_reset_token", {"token": "x.y.z"})
        assert result.is_error and "'redeem' scope" in result.content[0].text
        sent = await agent.call_tool("request_password_reset", reset_args(email=f"era-{mode}@example.com"))
        assert not sent.is_error and sent.structured_content["status"] == "sent"
    async with mcp_client(srv.url, srv.key("app"), mode=mode) as app:
        result = await app.call_tool("request_password_reset", reset_args())
        assert result.is_error and "'send' scope" in result.content[0].text


def _valid_args(schema: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name in schema.get("required", []):
        prop = schema["properties"][name]
        args[name] = prop["enum"][0] if "enum" in prop else "a@example.com" if "email" in name else "x"
    if "ip" in args:
        args["ip"] = "198.51.100.9"
    return args


async def test_every_tool_refuses_a_key_without_its_scope(srv: RunningServer) -> None:
    async with mcp_client(srv.url, srv.key("both")) as both:
        tools = (await both.list_tools()).tools
    async with mcp_client(srv.url, srv.key("admin")) as admin:
        for tool in tools:
            result = await admin.call_tool(tool.name, _valid_args(tool.input_schema))
            assert result.is_error and "lacks the" in result.content[0].text, tool.name


# --- REST -------------------------------------------------------------------------------


async def test_reset_page_verifies_and_consumes_over_rest(srv: RunningServer) -> None:
    async with mcp_client(srv.url, srv.key("agent")) as agent:
        sent = await agent.call_tool("request_password_reset", reset_args(email="bob@example.com", user_id="u-bob"))
    assert sent.structured_content["status"] == "sent"
    token = reset_token_for(srv.settings, "bob@example.com")
    assert token not in str(sent)
    app = srv.auth("app")
    verified = httpx.post(f"{srv.url}/v1/tokens/verify", json={"token": token}, headers=app)
    assert verified.status_code == 200
    assert verified.json() | {"expires_at": None} == {
        "valid": True, "user_id": "u-bob", "email": "bob@example.com", "expires_at": None, "reason": None
    }  # fmt: skip
    body = {"token": token, "ip": "203.0.113.9", "user_agent": CHROME_UA}
    consumed = httpx.post(f"{srv.url}/v1/tokens/consume", json=body, headers=app)
    assert consumed.status_code == 200 and consumed.json()["consumed"] is True and consumed.json()["user_id"] == "u-bob"
    again = httpx.post(f"{srv.url}/v1/tokens/consume", json={"token": token}, headers=app).json()
    assert again["consumed"] is False and again["reason"]
    assert httpx.post(f"{srv.url}/v1/tokens/verify", json={"token": token}, headers=app).json()["valid"] is False


def test_rest_refuses_missing_keys_and_scopes(srv: RunningServer) -> None:
    url = f"{srv.url}/v1/tokens/verify"
    for headers in ({}, {"Authorization": "Bearer rmcp_abcdefgh_nope"}):
        r = httpx.post(url, json={"token": "t"}, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer") and r.json()["error"]
    r = httpx.post(url, json={"token": "t"}, headers=srv.auth("agent"))
    assert r.status_code == 403 and "'redeem'" in r.json()["error"]
    r = httpx.get(f"{srv.url}/v1/approvals", headers=srv.auth("app"))
    assert r.status_code == 403 and "'approve'" in r.json()["error"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"{not json", "JSON"), (b"[1, 2]", "object"), (b"{}", "'token'"), (b'{"token": 5}', "'token'")],
)
def test_rest_bad_bodies_are_400(srv: RunningServer, content: bytes, message: str) -> None:
    headers = {**srv.auth("app"), "Content-Type": "application/json"}
    r = httpx.post(f"{srv.url}/v1/tokens/consume", content=content, headers=headers)
    assert r.status_code == 400 and message in r.json()["error"]


def test_failed_verifications_are_throttled_per_client_ip(srv: RunningServer) -> None:
    def verify(ip: str, n: int) -> httpx.Response:
        body = {"token": f"a.b.c{n}", "ip": ip}  # another bad token each time: the client's cap, not the token's
        return httpx.post(f"{srv.url}/v1/tokens/verify", json=body, headers=srv.auth("app"))

    for n in range(10):
        assert verify("203.0.113.77", n).json()["valid"] is False
    limited = verify("203.0.113.77", 10)
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 300
    assert verify("203.0.113.78", 11).status_code == 200  # another client is unaffected


def test_throttle_window_slides() -> None:
    now = [0.0]
    throttle = ClientThrottle(limit=3, window=60, clock=lambda: now[0], max_clients=2)
    for _ in range(3):
        throttle.failed("a")
    assert throttle.retry_after("a") == 60
    now[0] = 61
    assert throttle.retry_after("a") is None
    throttle.failed("b")
    throttle.failed("c")
    assert set(throttle._failures) == {"b", "c"}  # bounded: the least recent client was dropped


def test_healthz_and_metrics(srv: RunningServer) -> None:
    assert httpx.get(f"{srv.url}/healthz").json() == {"status": "ok"}
    metrics = httpx.get(f"{srv.url}/metrics")  # loopback: no key needed
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    for name in (
        "reset_mcp_tool_calls_total", "reset_mcp_deliveries_total", "reset_mcp_delivery_seconds_bucket",
        "reset_mcp_pending_approvals", 'reset_mcp_outbox_depth{status="sent"}',
    ):  # fmt: skip
        assert name in metrics.text
    assert 'reset_mcp_tool_calls_total{status="ok",tool="request_password_reset"}' in metrics.text
    assert 'reset_mcp_deliveries_total{status="sent"}' in metrics.text


def test_wrong_host_or_origin_is_refused(srv: RunningServer) -> None:
    for path in ("/mcp", "/v1/tokens/verify"):
        r = httpx.post(f"{srv.url}{path}", json={}, headers={**srv.auth("both"), "Host": "evil.example"})
        assert r.status_code == 421
        origin = {**srv.auth("both"), "Origin": "http://evil.example"}
        assert httpx.post(f"{srv.url}{path}", json={}, headers=origin).status_code == 403
    ok = {**srv.auth("app"), "Origin": "http://localhost:3000"}
    assert httpx.post(f"{srv.url}/v1/tokens/verify", json={"token": "t"}, headers=ok).status_code == 200


# --- admin approvals (oversight gated) ----------------------------------------------------


async def test_held_send_is_approved_over_rest_by_another_key(gated: RunningServer) -> None:
    async with mcp_client(gated.url, gated.key("agent")) as agent:
        held = (await agent.call_tool("request_password_reset", reset_args(email="carol@ex.com"))).structured_content
    async with mcp_client(gated.url, gated.key("dual")) as dual:
        own = (await dual.call_tool("request_password_reset", reset_args(email="dave@example.com"))).structured_content
    assert held["status"] == own["status"] == "pending_approval"
    admin, base = gated.auth("admin"), f"{gated.url}/v1/approvals"

    listed = httpx.get(base, params={"status": "pending"}, headers=admin).json()
    by_id = {a["id"]: a for a in listed["approvals"]}
    assert by_id[held["approval_id"]]["requested_by"] == f"key:{gated.key_id('agent')}"
    assert httpx.get(base, params={"status": "bogus"}, headers=admin).status_code == 400

    # The key that asked for a send cannot approve it, even holding the approve scope.
    r = httpx.post(f"{base}/{own['approval_id']}/approve", headers=gated.auth("dual"))
    assert r.status_code == 403 and "credentials" in r.json()["error"]
    r = httpx.post(f"{base}/{held['approval_id']}/approve", json={"reason": "checked"}, headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert r.json()["delivery"]["status"] == "sent"
    assert reset_token_for(gated.settings, "carol@ex.com")
    assert httpx.post(f"{base}/{held['approval_id']}/approve", headers=admin).status_code == 409
    assert httpx.post(f"{base}/apr_nope/approve", headers=admin).status_code == 404

    assert httpx.post(f"{base}/{own['approval_id']}/reject", json={}, headers=admin).status_code == 400
    r = httpx.post(f"{base}/{own['approval_id']}/reject", json={"reason": "not asked by the user"}, headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert httpx.post(f"{base}/{own['approval_id']}/reject", json={"reason": "x"}, headers=admin).status_code == 409
    assert httpx.post(f"{base}/{own['approval_id']}/reject", headers=gated.auth("agent")).status_code == 403
    metrics = httpx.get(f"{gated.url}/metrics").text
    assert "reset_mcp_pending_approvals 0.0" in metrics


# --- other transports and modes -----------------------------------------------------------


async def test_sse_smoke(tmp_path: Path) -> None:
    with running_server(make_settings(tmp_path), {"agent": ["send"]}, transport="sse") as server:
        assert httpx.get(f"{server.url}/sse").status_code == 401
        async with sse_mcp_client(server.url, server.key("agent")) as client:
            assert names(await client.list_tools()) == ALL_TOOLS - REDEEM_TOOLS
            result = await client.call_tool("request_password_reset", reset_args())
            assert result.structured_content["status"] == "sent"


async def test_stateless_mode_serves_both_eras(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, stateless_http=True)
    with running_server(settings, {"app": ["redeem"]}) as server:
        for mode in ERAS:
            async with mcp_client(server.url, server.key("app"), mode=mode) as client:
                assert names(await client.list_tools()) == REDEEM_TOOLS
                result = await client.call_tool("verify_reset_token", {"token": "a.b.c"})
                assert result.structured_content["valid"] is False


def test_public_bind_guards_metrics_but_not_healthz(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, http_host="0.0.0.0", allowed_hosts="reset.example.com", allowed_origins="https://app.example.com",
        trust_caller_recipient=True,
    )  # fmt: skip
    keys = make_keys(settings, {"prometheus": ["send"]})
    with TestClient(build_http_app(settings), base_url="http://reset.example.com") as client:
        assert client.get("/metrics").status_code == 401
        scraped = client.get("/metrics", headers={"Authorization": f"Bearer {keys['prometheus'][0]}"})
        assert scraped.status_code == 200 and "reset_mcp_outbox_depth" in scraped.text
        assert client.get("/metrics", headers={"Host": "10.0.0.5:8765"}).status_code == 421
        # A load balancer probes by instance address: /healthz answers whatever the Host.
        assert client.get("/healthz", headers={"Host": "10.0.0.5:8765"}).json() == {"status": "ok"}


def test_public_bind_needs_allowed_hosts_and_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(transport="streamable-http", host="0.0.0.0", port=0, stateless=False, workers=None)
    assert serve(serve_settings(make_settings(tmp_path), args), args.transport) == 2
    assert "RESET_MCP_ALLOWED_HOSTS" in capsys.readouterr().err
    guarded = make_settings(tmp_path, allowed_hosts="reset.example.com", allowed_origins="https://app.example.com")
    assert serve(serve_settings(guarded, args), args.transport) == 2
    assert "RESET_MCP_TRUST_CALLER_RECIPIENT=true" in capsys.readouterr().err  # issue 20: who names the recipient
    trusted = guarded.model_copy(update={"trust_caller_recipient": True})
    assert serve(serve_settings(trusted, args), args.transport) == 2
    assert "no active API keys" in capsys.readouterr().err
