"""Each key reads only what it needs (issue 22, item 17): an agent's `send` key sees its
own pending sends and requests, and of a contact only what its own requests showed; the
`contacts:read` scope (support staff) reads any contact, over MCP and REST; the overseer
(`approve`) and the local user see everything. Against a real server on loopback."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from reset_mcp.cli.keys import run_keys
from reset_mcp.cli.main import _parser as build_parser
from reset_mcp.flows import paging
from tests.conftest import reset_args
from tests.httpserver import RunningServer, mcp_client, running_server
from tests.test_http import make_settings

NOW = datetime(2100, 1, 1, tzinfo=UTC)  # a position after every row: the page holds them all
KEYS = {"agent1": ["send"], "agent2": ["send"], "support": ["contacts:read"], "admin": ["approve"]}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    settings = make_settings(tmp_path_factory.mktemp("scopes"), oversight_mode="gated")
    with running_server(settings, KEYS) as server:
        yield server


async def _call(srv: RunningServer, key: str, tool: str, args: dict[str, Any]) -> Any:
    async with mcp_client(srv.url, srv.key(key)) as client:
        result = await client.call_tool(tool, args)
    return result


@pytest.fixture(scope="module")
def held(srv: RunningServer) -> dict[str, str]:
    """agent1 asked for alice, agent2 for bob: both held for approval. Request ids by key."""

    async def run() -> dict[str, str]:
        out = {}
        for key, email, user in (("agent1", "alice@example.com", "u-a"), ("agent2", "bob@example.com", "u-b")):
            result = await _call(srv, key, "request_password_reset", reset_args(email=email, user_id=user))
            assert result.structured_content["status"] == "pending_approval"
            out[key] = result.structured_content["request_id"]
        return out

    return anyio.run(run)


async def test_a_send_key_lists_only_its_own_pending_sends(srv: RunningServer, held: dict[str, str]) -> None:
    for key in ("agent1", "agent2"):
        listed = (await _call(srv, key, "list_pending_sends", {})).structured_content
        assert [p["request_id"] for p in listed["pending"]] == [held[key]]
        assert listed["count"] == 1
    admin = httpx.get(f"{srv.url}/v1/approvals", headers=srv.auth("admin")).json()
    assert {a["request_id"] for a in admin["approvals"]} >= set(held.values())  # the overseer sees all


async def test_a_made_up_cursor_does_not_widen_the_listing(srv: RunningServer, held: dict[str, str]) -> None:
    # A cursor is base64 JSON a caller can write: one naming no filter, or another's, still
    # lists only the caller's own held sends.
    for forged in (paging.Position(NOW, "apr_zzz"), paging.Position(NOW, "apr_zzz", f"key:{srv.key_id('agent2')}")):
        result = await _call(srv, "agent1", "list_pending_sends", {"cursor": paging.encode(forged)})
        assert [p["request_id"] for p in result.structured_content["pending"]] == [held["agent1"]]


async def test_a_send_key_cannot_read_another_callers_request(srv: RunningServer, held: dict[str, str]) -> None:
    mine = await _call(srv, "agent1", "get_send_status", {"request_id": held["agent1"]})
    assert not mine.is_error and mine.structured_content["recipient"] == "alice@example.com"
    for tool in ("get_send_status", "get_delivery_status"):
        theirs = await _call(srv, "agent1", tool, {"request_id": held["agent2"]})
        missing = await _call(srv, "agent1", tool, {"request_id": "req_nosuch"})
        # Refused exactly as a request that does not exist: no hint that it does.
        assert theirs.is_error and theirs.content[0].text.endswith(f"no request {held['agent2']!r}")
        assert missing.is_error and missing.content[0].text.endswith("no request 'req_nosuch'")
        assert theirs.content[0].text.replace(held["agent2"], "req_nosuch") == missing.content[0].text


async def test_contact_reads_need_contacts_read(srv: RunningServer, held: dict[str, str]) -> None:
    # agent1 never asked about bob: it learns nothing of him.
    theirs = (await _call(srv, "agent1", "get_contact", {"email": "bob@example.com"})).structured_content
    assert theirs["own_only"] is True and theirs["known_ips"] == [] and theirs["last_reset_ip"] is None
    assert theirs["recent_events"] == [] and theirs["event_count"] == 0
    # What its own request showed, it sees.
    mine = (await _call(srv, "agent1", "get_contact", {"email": "alice@example.com"})).structured_content
    assert mine["own_only"] is True and mine["known_ips"] == ["198.51.100.7"]
    assert {e["event_type"] for e in mine["recent_events"]} == {"reset_requested"}
    # Support staff read any contact, over MCP and REST.
    full = (await _call(srv, "support", "get_contact", {"email": "bob@example.com"})).structured_content
    assert full["own_only"] is False and full["known_ips"] == ["198.51.100.7"] and full["user_ids"] == ["u-b"]
    rest = httpx.get(f"{srv.url}/v1/contacts", params={"email": "bob@example.com"}, headers=srv.auth("support"))
    assert rest.status_code == 200 and rest.json()["known_ips"] == ["198.51.100.7"]
    refused = httpx.get(f"{srv.url}/v1/contacts", params={"email": "bob@example.com"}, headers=srv.auth("agent1"))
    assert refused.status_code == 403 and "'contacts:read'" in refused.json()["error"]
    assert httpx.get(f"{srv.url}/v1/contacts", headers=srv.auth("support")).status_code == 400


async def test_abuse_details_need_contacts_read(srv: RunningServer, held: dict[str, str]) -> None:
    args = {"email": "bob@example.com"}
    limited = (await _call(srv, "agent1", "check_reset_abuse", args)).structured_content
    assert limited["attempts"] == 1 and limited["risk"] == "low"
    assert limited["distinct_ips"] == [] and limited["distinct_devices"] == [] and limited["countries"] == []
    full = (await _call(srv, "support", "check_reset_abuse", args)).structured_content
    assert full["distinct_ips"] == ["198.51.100.7"] and full["distinct_devices"] == ["Chrome/Windows"]


async def test_a_contacts_read_key_sees_only_the_read_tools(srv: RunningServer) -> None:
    async with mcp_client(srv.url, srv.key("support")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"get_contact", "check_reset_abuse"}
        refused = await client.call_tool("record_contact_event", {"email": "x@example.com", "event_type": "t"})
        assert refused.is_error and "lacks the 'send' scope" in refused.content[0].text


def test_the_cli_makes_a_contacts_read_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["keys", "create", "--scope", "contacts:read", "--name", "support desk"])
    assert run_keys(make_settings(tmp_path), args) == 0
    assert "with scopes contacts:read" in capsys.readouterr().err
    assert run_keys(make_settings(tmp_path), argparse.Namespace(action="list")) == 0
    assert "contacts:read" in capsys.readouterr().out
