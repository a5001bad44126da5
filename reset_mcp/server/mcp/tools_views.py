"""Read-only tools: pending sends, send and delivery status, email previews.

An agent can see what is held and why, but nothing here (nor anywhere among the
agent's tools) can approve: approval happens on channels the agent does not hold.
"""

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations
from pydantic import Field

from reset_mcp.compose import resolve_locale
from reset_mcp.emails.registry import BUILTIN_NAMES
from reset_mcp.errors import InvalidInputError
from reset_mcp.models import PendingSends, PreviewResult, SendStatusView
from reset_mcp.server.mcp.caller import app_of, caller_of
from reset_mcp.server.mcp.errors import Tools, tool_errors
from reset_mcp.vocab import Scope

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
PreviewKind = Literal[BUILTIN_NAMES]  # type: ignore[valid-type]
RequestId = Annotated[str, Field(description="request_id from request_password_reset or an alert.", max_length=64)]


def register(tool: Tools) -> None:
    @tool(title="List emails awaiting approval", annotations=READ_ONLY)
    async def list_pending_sends(
        ctx: Context[Any],
        limit: Annotated[int, Field(description="At most this many on one page.", ge=1, le=500)] = 100,
        cursor: Annotated[
            str | None, Field(description="next_cursor of the previous page; leave out for the first.", max_length=512)
        ] = None,
    ) -> PendingSends:
        """Emails the oversight policy holds for a human's approval, newest first, a page at a time
        (read-only: agents cannot approve). An API key sees only the ones it requested, as the
        resource reset://my-pending-sends lists them. With an account directory, emails to accounts
        are the overseer's to see, not listed here."""
        with tool_errors():
            caller = caller_of(ctx, Scope.SEND)
            return await app_of(ctx).service.approvals.agent_pending(limit, cursor=cursor, caller=caller)

    @tool(title="Get a send's status", annotations=READ_ONLY)
    async def get_send_status(request_id: RequestId, ctx: Context[Any]) -> SendStatusView:
        """What became of one of your requests: the policy's decision, any approval, and its deliveries."""
        with tool_errors():
            return await app_of(ctx).service.approvals.agent_send_status(request_id, caller_of(ctx, Scope.SEND))

    @tool(title="Get delivery status", annotations=READ_ONLY)
    async def get_delivery_status(request_id: RequestId, ctx: Context[Any]) -> SendStatusView:
        """Delivery attempts of your request's emails: status, attempts, next retry, provider's reason."""
        with tool_errors():
            return await app_of(ctx).service.approvals.agent_send_status(request_id, caller_of(ctx, Scope.SEND))

    @tool(title="Preview an email", annotations=READ_ONLY)
    async def preview_email(
        kind: Annotated[PreviewKind, Field(description="Which email.")],
        ctx: Context[Any],
        locale: Annotated[str | None, Field(description="BCP 47 language tag.", max_length=35)] = None,
    ) -> PreviewResult:
        """Render an email with sample data as this server would send it (its reset page URL, with the
        token masked); sends nothing and mints no token."""
        with tool_errors():
            caller_of(ctx, Scope.SEND)
            if locale is not None and not locale.strip():
                raise InvalidInputError("locale: must not be blank")
            rendered = app_of(ctx).messages.sample(kind, locale=locale)
            return PreviewResult(
                kind=kind,
                locale=resolve_locale(locale),
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
            )
