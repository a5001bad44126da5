"""One prober cannot lock every user out of redeeming (issue 22, item 3): failed token
checks count per (key, client network) and per token, and a global cap slows failing
callers down without refusing a client that has not failed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client

from reset_mcp.app import App
from reset_mcp.errors import TooManyFailuresError
from reset_mcp.flows.reset import ResetInput
from reset_mcp.mail.memory import MemoryBackend
from reset_mcp.policy.throttle import RedeemLimits, RedeemThrottle
from tests.conftest import CHROME_UA, reset_args, token_from
from tests.httpserver import mcp_client, running_server
from tests.test_http import make_settings, reset_token_for

NOW = datetime(2030, 5, 17, 12, 0, tzinfo=UTC)


def test_bad_tokens_from_ten_ips_do_not_stop_a_valid_link_from_an_eleventh_over_rest(tmp_path: Path) -> None:
    # The attack on the app's single `redeem` key: ten addresses, each kept under
    # its own cap, a hundred failures in all (the old per-key cap).
    with running_server(make_settings(tmp_path / "data"), {"agent": ["send"], "app": ["redeem"]}) as srv:
        app = srv.auth("app")
        verify = f"{srv.url}/v1/tokens/verify"
        for ip in range(10):
            for n in range(10):
                body = {"token": f"forged.{ip}.{n}", "ip": f"203.0.113.{ip + 1}"}
                assert httpx.post(verify, json=body, headers=app).json()["valid"] is False
            limited = httpx.post(verify, json={"token": "forged.x.y", "ip": f"203.0.113.{ip + 1}"}, headers=app)
            assert limited.status_code == 429  # each prober is stopped

        async def request() -> None:
            async with mcp_client(srv.url, srv.key("agent")) as agent:
                await agent.call_tool("request_password_reset", reset_args(email="dana@example.com", user_id="u-dana"))

        anyio.run(request)
        token = reset_token_for(srv.settings, "dana@example.com")
        user = {"token": token, "ip": "198.51.100.200"}  # the owner, from an eleventh address
        verified = httpx.post(verify, json=user, headers=app)
        assert verified.status_code == 200 and verified.json()["valid"] is True
        consumed = httpx.post(f"{srv.url}/v1/tokens/consume", json=user, headers=app)
        assert consumed.status_code == 200 and consumed.json()["consumed"] is True


async def test_the_same_attack_over_mcp_with_the_ip_argument(app: App, client: Client, backend: MemoryBackend) -> None:
    for ip in range(10):
        for n in range(10):
            result = await client.call_tool("verify_reset_token", {"token": f"f.{ip}.{n}", "ip": f"203.0.113.{ip}"})
            assert not result.is_error and result.structured_content["valid"] is False  # type: ignore[index]
        refused = await client.call_tool("verify_reset_token", {"token": "f.x.y", "ip": f"203.0.113.{ip}"})
        assert refused.is_error and "too many failed token checks" in refused.content[0].text  # type: ignore[union-attr]
    await app.service.request_password_reset(ResetInput("erin@example.com", "u-erin", "198.51.100.9", CHROME_UA))
    token = token_from(backend.sent[-1])
    ok = await client.call_tool("consume_reset_token", {"token": token, "ip": "198.51.100.9"})
    assert not ok.is_error and ok.structured_content["consumed"] is True  # type: ignore[index]


async def test_one_ipv6_network_is_one_client(app: App) -> None:
    for n in range(10):
        assert not (await app.service.verify_reset_token(f"f.{n}", ip=f"2001:db8:7:7::{n + 1}")).valid
    with pytest.raises(TooManyFailuresError):
        await app.service.verify_reset_token("f.next", ip="2001:db8:7:7:ffff::1")
    assert not (await app.service.verify_reset_token("f.next", ip="2001:db8:7:8::1")).valid  # the next /64


async def test_one_token_is_refused_after_its_failures_from_any_address(app: App) -> None:
    for n in range(10):
        assert not (await app.service.verify_reset_token("same.bad.token", ip=f"203.0.113.{n}")).valid
    with pytest.raises(TooManyFailuresError):
        await app.service.verify_reset_token("same.bad.token", ip="198.51.100.1")
    assert not (await app.service.verify_reset_token("other.bad.token", ip="198.51.100.1")).valid


async def test_past_the_global_cap_failures_slow_down_but_a_clean_client_still_redeems(
    app: App, backend: MemoryBackend
) -> None:
    app.service.throttle.limits = RedeemLimits(global_cap=20, braked_client=3, brake_delay=0.2)
    for n in range(20):  # twenty probers, one failure each: the cap
        assert not (await app.service.verify_reset_token(f"f.{n}", ip=f"203.0.113.{n}")).valid
    started = time.perf_counter()
    assert not (await app.service.verify_reset_token("f.slow", ip="203.0.113.50")).valid
    assert time.perf_counter() - started >= 0.2  # a failed answer now waits
    for n in range(2):  # a prober's budget is smaller while braking
        await app.service.verify_reset_token(f"g.{n}", ip="203.0.113.50")
    with pytest.raises(TooManyFailuresError):
        await app.service.verify_reset_token("g.x", ip="203.0.113.50")
    # Nobody is locked out: a user with no failures redeems at once.
    await app.service.request_password_reset(ResetInput("finn@example.com", "u-finn", "198.51.100.9", CHROME_UA))
    token = token_from(backend.sent[-1])
    started = time.perf_counter()
    assert (await app.service.verify_reset_token(token, ip="198.51.100.9")).valid
    assert (await app.service.consume_reset_token(token, ip="198.51.100.9")).consumed
    assert time.perf_counter() - started < 0.2


def test_the_throttle_unit() -> None:
    throttle = RedeemThrottle(RedeemLimits(client=2, token=3, unknown_client=4), max_keys=3)
    for n in range(2):
        throttle.failed("key:a", "203.0.113.1", f"t{n}", NOW)
    with pytest.raises(TooManyFailuresError) as info:
        throttle.check("key:a", "203.0.113.1", "t9", NOW + timedelta(seconds=10))
    assert info.value.retry_after == 290
    throttle.check("key:b", "203.0.113.1", "t9", NOW)  # another key from that client: its own bucket
    throttle.check("key:a", "203.0.113.1", "t9", NOW + timedelta(minutes=5))  # the window slid
    throttle.succeeded("key:a", "203.0.113.1")
    throttle.check("key:a", "203.0.113.1", "t9", NOW)  # a success clears the client's count
    for n in range(4):
        throttle.failed("key:a", None, f"u{n}", NOW)
    with pytest.raises(TooManyFailuresError):
        throttle.check("key:a", None, "u9", NOW)  # no client known: the key's own ceiling
    assert len(throttle._clients) <= 3 and len(throttle._tokens) <= 3  # bounded
    assert not any("t0" in name for name in throttle._tokens)  # tokens kept only as hashes
