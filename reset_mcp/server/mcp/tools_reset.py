"""Tools for the reset itself: request, verify, consume, revoke, report."""

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations
from pydantic import Field

from reset_mcp.flows.reset import ResetInput
from reset_mcp.models import ConsumeResult, ReportResult, ResetRequestResult, RevokeResult, VerifyResult
from reset_mcp.server.mcp.arguments import AccountId
from reset_mcp.server.mcp.caller import app_of, caller_of
from reset_mcp.server.mcp.confirm import confirmation_param, to_confirmation
from reset_mcp.server.mcp.errors import Tools, tool_errors
from reset_mcp.vocab import Scope

Email = Annotated[str, Field(description="The account's email address.", max_length=320)]
Token = Annotated[str, Field(description="The token from the reset link.", max_length=4096)]
Ip = Annotated[str, Field(description="IP address of the person asking (IPv4 or IPv6).", max_length=64)]
Agent = Annotated[str, Field(description="Their browser's User-Agent header.", max_length=2048)]


def register(tool: Tools) -> None:
    @tool(
        title="Request a password reset",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
        ),
    )
    async def request_password_reset(
        email: Email,
        user_id: Annotated[AccountId, Field(description="Your app's id for the account.", max_length=200)],
        ip: Ip,
        user_agent: Agent,
        ctx: Context[Any],
        confirmation: confirmation_param,  # type: ignore[valid-type]
        name: Annotated[str | None, Field(description="Name to greet the user by.", max_length=200)] = None,
        location: Annotated[
            str | None, Field(description="Approximate location, if your app knows it.", max_length=200)
        ] = None,
        locale: Annotated[str | None, Field(description="BCP 47 language tag, e.g. de-AT.", max_length=35)] = None,
        timezone: Annotated[
            str | None, Field(description="IANA timezone for times in the email.", max_length=64)
        ] = None,
    ) -> ResetRequestResult:
        """Email a signed, one-time reset link to the account owner, with who asked (IP, browser,
        location). Never returns the link. Status: sent, queued, pending_approval, blocked,
        rate_limited (see retry_after) or rejected."""
        with tool_errors():
            app = app_of(ctx)
            inp = ResetInput(email, user_id, ip, user_agent, name, location, locale, timezone)
            confirmed = to_confirmation(confirmation).confirmed
            return await app.service.request_password_reset(inp, caller_of(ctx, Scope.SEND), confirmed=confirmed)

    @tool(
        title="Verify a reset token",
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    )
    async def verify_reset_token(
        token: Token,
        ctx: Context[Any],
        ip: Annotated[
            str | None,
            Field(description="IP of the person opening the link (failures count per client).", max_length=64),
        ] = None,
    ) -> VerifyResult:
        """Check a token from a reset link without using it up (for rendering the reset form)."""
        with tool_errors():
            return await app_of(ctx).service.verify_reset_token(token, caller_of(ctx, Scope.REDEEM), ip=ip)

    @tool(
        title="Consume a reset token",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
        ),
    )
    async def consume_reset_token(
        token: Token,
        ctx: Context[Any],
        ip: Annotated[str | None, Field(description="IP of the person changing the password.", max_length=64)] = None,
        user_agent: Annotated[str | None, Field(description="Their User-Agent.", max_length=2048)] = None,
    ) -> ConsumeResult:
        """Use a token once, when the new password is set: exactly one call ever succeeds. Revokes the
        user's other tokens and emails the owner a 'your password was changed' notice."""
        with tool_errors():
            return await app_of(ctx).service.consume_reset_token(
                token, caller_of(ctx, Scope.REDEEM), ip=ip, user_agent=user_agent
            )

    @tool(
        title="Revoke reset tokens",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def revoke_reset_tokens(
        reason: Annotated[str, Field(description="Why, for the audit log.", max_length=500)],
        ctx: Context[Any],
        email: Annotated[str | None, Field(description="Account email.", max_length=320)] = None,
        user_id: Annotated[AccountId | None, Field(description="Account id.", max_length=200)] = None,
    ) -> RevokeResult:
        """Revoke every outstanding reset link of an account (give email or user_id)."""
        with tool_errors():
            return await app_of(ctx).service.revoke_reset_tokens(
                email=email, user_id=user_id, reason=reason, caller=caller_of(ctx, Scope.SEND)
            )

    @tool(
        title="Report an unrequested reset",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def report_unrequested_reset(token: Token, ctx: Context[Any]) -> ReportResult:
        """The owner clicked "this wasn't me": revoke that link, record it, and raise the account's risk."""
        with tool_errors():
            return await app_of(ctx).service.report_unrequested_reset(token, caller_of(ctx, Scope.REDEEM))
