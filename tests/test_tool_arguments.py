"""Every tool's refused arguments come back as one line naming the argument and what it
expects; numeric account ids are taken. Through real clients: in process in both protocol
eras, a stdio subprocess, streamable HTTP.

The bad calls are made from each tool's published input schema, so a tool added later is
covered without a change here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp_types import Tool
from pydantic import ValidationError

from reset_mcp.app import App
from reset_mcp.config import load_settings
from reset_mcp.server.mcp.arguments import describe, one_line
from tests.conftest import SECRET, client_for, reset_args
from tests.httpserver import mcp_client, running_server

REPO = Path(__file__).resolve().parent.parent
SENTINEL = "SENTINEL-7f3a"  # a value that must never come back in an answer
RAW_DUMP_MARKS = ("validation error", "pydantic", "https://", "Input should", "[type=", "Arguments")


def _simple(prop: dict[str, Any]) -> dict[str, Any]:
    """The non-null alternative an optional argument's schema wraps."""
    for alt in prop.get("anyOf", []):
        if alt.get("type") != "null":
            return {**alt, **{k: v for k, v in prop.items() if k not in ("anyOf", "default")}}
    return prop


def wrong_type(prop: dict[str, Any]) -> Any:
    """A value of a JSON type the argument does not accept."""
    kinds = {a.get("type") for a in [_simple(prop), *_simple(prop).get("anyOf", [])]}
    if "enum" in _simple(prop):
        return SENTINEL
    if kinds & {"string", "integer"}:
        return [SENTINEL]
    return SENTINEL  # object, boolean: a string is wrong


def bad_calls(tool: Tool) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(case, the argument at fault, arguments): a wrong type, a missing one, out of bounds."""
    schema = tool.input_schema
    props: dict[str, Any] = schema["properties"]
    required: list[str] = schema.get("required", [])
    good = {name: _good(props[name]) for name in required}
    for name, prop in props.items():
        yield f"{name} wrong type", name, {**good, name: wrong_type(prop)}
        simple = _simple(prop)
        if "maxLength" in simple:
            yield f"{name} too long", name, {**good, name: "x" * (simple["maxLength"] + 1)}
        if "maximum" in simple:
            yield f"{name} too big", name, {**good, name: simple["maximum"] + 1}
    for name in required:
        yield f"{name} missing", name, {k: v for k, v in good.items() if k != name}


def _good(prop: dict[str, Any]) -> Any:
    simple = _simple(prop)
    return simple["enum"][0] if "enum" in simple else "a@example.com"


def assert_one_line(text: str, tool: str, argument: str) -> None:
    assert "\n" not in text, text
    assert text.startswith(f"Error executing tool {tool}: "), text
    assert f"{argument}: " in text, text
    assert SENTINEL not in text, text
    for mark in RAW_DUMP_MARKS:
        assert mark not in text, text


async def check_every_tool(client: Client) -> int:
    checked = 0
    for tool in (await client.list_tools()).tools:
        for case, argument, args in bad_calls(tool):
            result = await client.call_tool(tool.name, args)
            assert result.is_error, (tool.name, case)
            assert_one_line(result.content[0].text, tool.name, argument)
            checked += 1
    return checked


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_every_schema_failure_of_every_tool_is_one_line_in_process(app: App, mode: str) -> None:
    async with client_for(app, mode=mode) as client:
        assert await check_every_tool(client) > 60


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_words_of_some_refusals(app: App, mode: str) -> None:
    async with client_for(app, mode=mode) as client:

        async def refusal(tool: str, **args: Any) -> str:
            result = await client.call_tool(tool, args)
            assert result.is_error
            return str(result.content[0].text).removeprefix(f"Error executing tool {tool}: ")

        no_ip = reset_args(user_id=True)
        del no_ip["ip"]
        assert await refusal("request_password_reset", **no_ip) == (
            "user_id: expected a string or a whole number, not true/false; ip: required (a string)"
        )
        assert await refusal("list_pending_sends", limit=501) == "limit: at most 500"
        assert await refusal("list_pending_sends", limit="many") == (
            "limit: expected a whole number from 1 to 500, not a string"
        )
        assert await refusal("preview_email", kind="welcome") == (
            "kind: expected one of: password_reset, security_alert, password_changed, oversight_notice, "
            "oversight_digest"
        )
        assert await refusal("get_contact", email="a@" + "x" * 400) == "email: at most 320 characters"
        nested = await refusal("record_contact_event", email="a@example.com", event_type="t", metadata={"k": [1]})
        assert nested == "metadata.k: expected a string, a whole number, a number or true/false, not a list"


async def test_numeric_account_ids_are_taken_as_their_text(app: App) -> None:
    async with client_for(app) as client:
        sent = await client.call_tool("request_password_reset", reset_args(user_id=42))
        assert not sent.is_error, sent.content
        assert sent.structured_content["status"] == "sent"
        checked = await client.call_tool("check_reset_abuse", {"user_id": 42})
        assert not checked.is_error and checked.structured_content["attempts"] == 1
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"type": "integer"} in tools["request_password_reset"].input_schema["properties"]["user_id"]["anyOf"]
        for refused in (4.5, True):
            result = await client.call_tool("request_password_reset", reset_args(user_id=refused))
            assert result.is_error


async def test_tool_errors_from_a_tool_body_pass_unchanged(app: App) -> None:
    async with client_for(app) as client:
        result = await client.call_tool("check_reset_abuse", {})
        assert result.is_error and result.content[0].text.endswith(": give email or user_id")


def test_describe_and_one_line_without_a_server() -> None:
    assert describe({"type": ["string", "null"]}, {}) == "a string"
    assert describe({"$ref": "#/$defs/K"}, {"K": {"enum": ["a", "b"]}}) == "one of: a, b"
    from pydantic import BaseModel

    class Args(BaseModel):
        n: int

    with pytest.raises(ValidationError) as caught:
        Args.model_validate({"n": [SENTINEL], "extra": 1})
    assert one_line(caught.value, Args.model_json_schema()) == "n: expected a whole number, not a list"


async def test_over_stdio_and_streamable_http(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "reset_mcp", "serve"],
        cwd=str(tmp_path),
        env={
            "PYTHONPATH": str(REPO),
            "RESET_MCP_DATA_DIR": str(tmp_path / "stdio"),
            "RESET_MCP_SECRET": SECRET,
            "PATH": os.environ.get("PATH", ""),
        },
    )
    async with Client(params) as client:
        assert await check_every_tool(client) > 60
        sent = await client.call_tool("request_password_reset", reset_args(user_id=42))
        assert sent.structured_content["status"] == "sent"
    settings = load_settings(data_dir=tmp_path / "http", secret=SECRET, email_backend="memory")
    with running_server(settings, {"agent": ["send"]}) as server:
        for mode in ("legacy", "auto"):
            async with mcp_client(server.url, server.key("agent"), mode=mode) as agent:
                assert await check_every_tool(agent) > 40
                sent = await agent.call_tool("request_password_reset", reset_args(user_id=7))
                assert sent.structured_content["status"] == "sent"
