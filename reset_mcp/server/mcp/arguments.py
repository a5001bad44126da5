"""Tool arguments: what an id may be, and a refused argument told in one line.

Before a tool runs, the SDK validates its arguments against the input schema and, on a
mismatch, answers with pydantic's own dump ("1 validation error for
request_password_resetArguments ... https://errors.pydantic.dev/..."). `ArgumentErrors`
turns that into one line per call naming each refused argument and what it expects,
worded from the tool's published input schema, the way domain errors read
(`user_id: expected a string or a whole number, not true/false`). The value itself is
never repeated: it is the caller's data.

`AccountId`: agents (and the MCP Inspector's `--tool-arg user_id=42`) send numeric ids
as JSON numbers; a whole number is taken as its decimal text, and the schema says so.

This module is the one place that knows how argument errors look; the tools and their
wrapper (errors.py) do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import BeforeValidator, ValidationError

from reset_mcp.app import App

JSON_TYPES = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true/false",
    "object": "an object",
    "array": "a list",
}
BOUNDS = {
    "string_too_long": "at most {max_length} characters",
    "string_too_short": "at least {min_length} characters",
    "too_long": "at most {max_length} items",
    "too_short": "at least {min_length} items",
    "less_than_equal": "at most {le}",
    "less_than": "less than {lt}",
    "greater_than_equal": "at least {ge}",
    "greater_than": "more than {gt}",
}


def _whole_number_as_text(value: Any) -> Any:
    # bool is an int in Python; true/false is no id.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


AccountId = Annotated[str, BeforeValidator(_whole_number_as_text, json_schema_input_type=str | int)]


def one_line(error: ValidationError, schema: Mapping[str, Any]) -> str:
    """Each refused argument once, in the order pydantic found them: `path: what it expects`.

    The path follows the schema (`metadata.note` for a value inside an object argument)
    and stops where pydantic's location names a union member instead (`str`, `int`)."""
    defs: Mapping[str, Any] = schema.get("$defs", {})
    by_path: dict[str, tuple[Mapping[str, Any] | None, list[Any]]] = {}
    for item in error.errors(include_url=False, include_input=True):
        path, leaf, exact = _walk(tuple(item.get("loc") or ()), schema, defs)
        entry = by_path.setdefault(path, (leaf, []))
        entry[1].append({**item, "exact": exact})
    parts = [f"{path}: {_problem(items, leaf, defs)}" for path, (leaf, items) in by_path.items()]
    return "; ".join(parts) or "the arguments do not match the tool's input schema"


def _walk(
    loc: tuple[Any, ...], schema: Mapping[str, Any], defs: Mapping[str, Any]
) -> tuple[str, Mapping[str, Any] | None, bool]:
    """(the path in words, the schema found there, whether the whole location was followed)."""
    names: list[str] = []
    here: Mapping[str, Any] | None = schema
    for part in loc:
        nxt = _child(here, part, defs) if here is not None else None
        if nxt is None:
            if not names:  # an argument the tool does not have
                return str(part), None, False
            return ".".join(names), here, False
        names.append(str(part))
        here = nxt
    return ".".join(names) or "arguments", here, True


def _child(schema: Mapping[str, Any], part: Any, defs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for branch in _alternatives(schema, defs):
        if isinstance(part, str) and part in branch.get("properties", {}):
            return branch["properties"][part]  # type: ignore[no-any-return]
        extra = branch.get("additionalProperties")
        if isinstance(part, str) and isinstance(extra, Mapping) and branch.get("type") == "object":
            return extra
        if isinstance(part, int) and isinstance(branch.get("items"), Mapping):
            return branch["items"]  # type: ignore[no-any-return]
    return None


def _alternatives(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _alternatives(defs.get(ref.removeprefix("#/$defs/"), {}), defs)
    nested = schema.get("anyOf") or schema.get("oneOf")
    if nested:
        return [leaf for branch in nested for leaf in _alternatives(branch, defs)]
    return [schema]


def _problem(items: list[Any], prop: Mapping[str, Any] | None, defs: Mapping[str, Any]) -> str:
    expected = describe(prop, defs) if prop is not None else "nothing (not an argument of this tool)"
    first = items[0]
    kind = first["type"]
    if kind == "missing" and first["exact"]:
        return f"required ({expected})"
    if kind in BOUNDS and first["exact"]:
        try:
            return BOUNDS[kind].format(**first.get("ctx", {}))
        except (KeyError, IndexError):
            pass
    if "input" in first and kind not in ("literal_error", "enum"):
        return f"expected {expected}, not {_json_type(first['input'])}"
    return f"expected {expected}"


def describe(prop: Mapping[str, Any], defs: Mapping[str, Any]) -> str:
    """What a JSON schema accepts, in words (null left out: leaving an optional argument out says it)."""
    ref = prop.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return describe(defs.get(ref.removeprefix("#/$defs/"), {}), defs)
    if "enum" in prop:
        return "one of: " + ", ".join(str(v) for v in prop["enum"])
    if "const" in prop:
        return f"exactly {prop['const']}"
    alternatives = prop.get("anyOf") or prop.get("oneOf")
    if alternatives:
        words = [describe(a, defs) for a in alternatives if a.get("type") != "null"]
        words = list(dict.fromkeys(w for w in words if w))
        return " or ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " or " + words[-1]
    kind = prop.get("type")
    if kind == "object" and isinstance(prop.get("additionalProperties"), Mapping):
        return f"an object whose values are each {describe(prop['additionalProperties'], defs)}"
    if kind == "integer" and "minimum" in prop and "maximum" in prop:
        return f"a whole number from {prop['minimum']} to {prop['maximum']}"
    if isinstance(kind, list):
        return " or ".join(JSON_TYPES.get(k, k) for k in kind if k != "null")
    return JSON_TYPES.get(str(kind), "a value")


def _json_type(value: Any) -> str:
    """The JSON type of what was sent (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return "another type"


class ArgumentErrors(MCPServer[App]):
    """The MCPServer, with a tool's refused arguments answered by `one_line`.

    Only the SDK's own argument check is rewritten (its ToolError reads
    `Error executing tool <name>: <ValidationError>` and has that ValidationError as
    cause); a ToolError from a tool body or a resolver passes unchanged."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[App, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ValidationError) or str(exc) != f"Error executing tool {name}: {cause}":
                raise
            schema = next((t.input_schema for t in await self.list_tools() if t.name == name), {})
            # `from cause`: the SDK logs the refused field names (never the values) from it.
            raise ToolError(f"Error executing tool {name}: {one_line(cause, schema)}") from cause
