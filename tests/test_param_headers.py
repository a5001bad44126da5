"""`Mcp-Param-*` checks skipped only where the SDK's own check could never reject a call."""

from __future__ import annotations

from typing import Annotated, Any

from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.server.mcpserver import MCPServer
from mcp.shared.inbound import validate_mcp_param_headers
from pydantic import Field

from reset_mcp.server.mcp.param_headers import declares_param_headers, only_declared, skip_undeclared_header_checks
from reset_mcp.server.mcp.server import build_server

HEADER = "x-mcp-header"


def sdk_verdict(schema: Any, arguments: dict[str, Any], headers: dict[str, str]) -> Any:
    """What the SDK's transport decides for a call: the check runs when the lookup gives a schema."""
    return None if schema is None else validate_mcp_param_headers(schema, arguments, headers)


def test_none_of_our_tools_declares_a_header_so_none_is_checked() -> None:
    for directory in (False, True):
        server = build_server(lambda: None, directory=directory)  # type: ignore[arg-type, return-value]
        lookup = server._lowlevel_server.get_tool_input_schema
        assert lookup is not None
        tools = server._tool_manager.list_tools()
        assert len(tools) >= 13
        for tool in tools:
            assert not declares_param_headers(tool.parameters), tool.name
            assert lookup(tool.name) is None
        assert lookup("no_such_tool") is None


def test_a_tool_that_declares_a_header_is_still_checked() -> None:
    server: MCPServer[Any] = MCPServer("t")

    @server.tool()
    async def route(region: Annotated[str, Field(json_schema_extra={HEADER: "Region"})], n: int = 0) -> str:
        return region

    @server.tool()
    async def plain(text: str) -> str:
        return text

    skip_undeclared_header_checks(server)
    lookup = server._lowlevel_server.get_tool_input_schema
    assert lookup is not None
    schema = lookup("route")
    assert schema is not None and schema["properties"]["region"][HEADER] == "Region"
    assert lookup("plain") is None
    mismatch = sdk_verdict(schema, {"region": "eu"}, {"mcp-param-region": "us"})
    assert mismatch is not None and "does not match" in mismatch.message
    assert sdk_verdict(schema, {"region": "eu"}, {"mcp-param-region": "eu"}) is None


def test_a_replaced_schema_is_decided_again() -> None:
    current: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}}
    lookup = only_declared(lambda name: current)
    assert lookup("t") is None
    current = {"type": "object", "properties": {"a": {"type": "string", HEADER: "A"}}}
    assert lookup("t") is current


# Schemas built from the shapes the SDK's walk distinguishes: annotations on properties
# reachable by a pure `properties` chain or not, valid tokens or not, duplicated or not.
# Valid tokens on primitive types weighted up, so that a good share of schemas declare headers.
TOKENS = st.sampled_from(["Region", "Region", "Tenant", "Tenant", "region", "bad token", "", 7])
TYPES = st.sampled_from(["string", "string", "integer", "boolean", "number", "object"])


@st.composite
def properties(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True)):
        prop: dict[str, Any] = {"type": draw(TYPES)}
        if draw(st.booleans()):
            prop[HEADER] = draw(TOKENS)
        if depth < 2 and prop["type"] == "object" and draw(st.booleans()):
            prop["properties"] = draw(properties(depth + 1))
        if draw(st.integers(0, 5)) == 0:
            prop["anyOf"] = [{"type": "string", HEADER: draw(TOKENS)}]
        out[name] = prop
    return out


VALUES = st.one_of(st.none(), st.text(max_size=4), st.integers(-3, 3), st.booleans(), st.floats(allow_nan=False))


@settings(max_examples=400, deadline=None)
@given(
    props=properties(),
    arguments=st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUES),
    headers=st.dictionaries(
        st.sampled_from(["mcp-param-region", "mcp-param-tenant", "mcp-param-a", "accept"]), st.text(max_size=4)
    ),
)
def test_the_verdict_is_the_sdks_for_every_schema(
    props: dict[str, Any], arguments: dict[str, Any], headers: dict[str, str]
) -> None:
    schema = {"type": "object", "properties": props}
    lookup = only_declared(lambda name: schema)
    assert sdk_verdict(lookup("t"), arguments, headers) == sdk_verdict(schema, arguments, headers)
