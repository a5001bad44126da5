"""`Mcp-Param-*` header checks only for tools that declare such headers.

On every streamable-HTTP `tools/call` the SDK (mcp 2.3) looks up the tool's input schema
and calls `validate_mcp_param_headers`, which walks the whole schema twice (once for
invalid `x-mcp-header` annotations, once for the valid ones) before it can find that none
of our tools declares a header: about 45 us per call on our `request_password_reset`
schema, for a result that never changes (issue 24). That check validates nothing for a
schema without a valid annotation, and the SDK skips it for a tool whose schema lookup
answers None. So the lookup answers None for such tools, decided once per schema object,
and the schema itself for a tool that declares headers: the SDK's verdict is the same in
every case (`tests/test_param_headers.py` checks it against the SDK's own function).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.shared.inbound import find_invalid_x_mcp_header, x_mcp_header_map

SchemaLookup = Callable[[str], Mapping[str, Any] | None]


def declares_param_headers(schema: Any) -> bool:
    """True when the SDK's header check could reject a call to a tool with this schema."""
    return find_invalid_x_mcp_header(schema) is None and bool(x_mcp_header_map(schema))


def only_declared(lookup: SchemaLookup) -> SchemaLookup:
    """`lookup`, answering None for a schema that declares no `Mcp-Param-*` header."""
    seen: dict[str, tuple[Mapping[str, Any], bool]] = {}

    def schema_if_declared(name: str) -> Mapping[str, Any] | None:
        schema = lookup(name)
        if schema is None:
            return None
        known = seen.get(name)
        if known is None or known[0] is not schema:  # a tool added or replaced since
            known = seen[name] = (schema, declares_param_headers(schema))
        return schema if known[1] else None

    return schema_if_declared


def skip_undeclared_header_checks(server: MCPServer[Any]) -> None:
    # mcp 2.3 takes this hook only as the low-level server's constructor argument, which
    # MCPServer fills with its own lookup; the attribute it is kept in is what the HTTP
    # transport reads on each call.
    lowlevel = server._lowlevel_server
    original = lowlevel.get_tool_input_schema
    if original is not None:
        lowlevel.get_tool_input_schema = only_declared(original)
