"""Read-only resources: the oversight policy in effect, and the caller's own held sends.

    reset://policy            each email kind's oversight mode and what it means
    reset://my-pending-sends  the held emails this caller asked for, newest first

Both answer for the caller who reads them (its App, its identity), which the SDK's
static resources cannot: their functions get no request context (mcp 2.3). So each is
listed as a `CallerResource` and read by `CallerResources.read_resource`, the server's
public read path, which hands the reader the request's Context. Reading needs the
`send` scope, like the agent's tools; a refusal is a resource error naming the scope.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.mcpserver.resources import Resource
from mcp_types import InputRequiredResult
from pydantic import AnyUrl, Field

from reset_mcp.app import App
from reset_mcp.errors import ResetMCPError, refusal
from reset_mcp.policy.oversight import agent_view
from reset_mcp.server.mcp.caller import app_of, caller_of
from reset_mcp.server.mcp.icons import icon
from reset_mcp.vocab import Scope

Reader = Callable[[Context[App, Any]], Awaitable[str]]
MY_PENDING_LIMIT = 100


class CallerResource(Resource):
    """A resource whose content depends on who reads it; read only through `CallerResources`."""

    reader: Reader = Field(exclude=True)

    async def read(self) -> str | bytes:
        raise ResourceError(f"{self.uri} is read with the caller's context")


class CallerResources(MCPServer[App]):
    """The MCPServer, reading `CallerResource`s with the request's Context."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._caller_resources: dict[str, CallerResource] = {}

    def add_caller_resource(self, resource: CallerResource) -> None:
        self._caller_resources[resource.uri] = resource
        self.add_resource(resource)

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[App, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        resource = self._caller_resources.get(str(uri))
        if resource is None or context is None:
            return await super().read_resource(uri, context)
        try:
            text = await resource.reader(context)
        except ToolError as exc:  # caller_of's refusal (a missing scope)
            raise ResourceError(str(exc)) from None
        except ResetMCPError as exc:
            raise ResourceError(refusal(exc).message) from None
        return [ReadResourceContents(content=text, mime_type=resource.mime_type, meta=resource.meta)]


async def _policy(ctx: Context[App, Any]) -> str:
    caller_of(ctx, Scope.SEND)
    return json.dumps(agent_view(app_of(ctx).policy), indent=2)


async def _my_pending(ctx: Context[App, Any]) -> str:
    caller = caller_of(ctx, Scope.SEND)
    page = await app_of(ctx).service.approvals.agent_pending(MY_PENDING_LIMIT, requested_by=caller.id, caller=caller)
    return page.model_dump_json(indent=2)


def register(server: CallerResources) -> None:
    server.add_caller_resource(
        CallerResource(
            uri="reset://policy",
            name="oversight_policy",
            title="Oversight policy in effect",
            description="Each email kind's oversight mode and what it means for your requests: sent at once, "
            "held for a human, confirmed by the person, or blocked. Read-only.",
            mime_type="application/json",
            icons=icon("policy"),
            reader=_policy,
        )
    )
    server.add_caller_resource(
        CallerResource(
            uri="reset://my-pending-sends",
            name="my_pending_sends",
            title="My emails awaiting approval",
            description=f"The held emails you asked for, newest first (at most {MY_PENDING_LIMIT}; "
            "next_cursor continues in list_pending_sends). Read-only: agents cannot approve.",
            mime_type="application/json",
            icons=icon("view"),
            reader=_my_pending,
        )
    )
