"""Tools for abuse checks, security alerts and the contact history."""

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations
from pydantic import Field

from reset_mcp.models import AbuseResult, AlertResult, ContactSummary, EventRecorded
from reset_mcp.server.mcp.arguments import AccountId
from reset_mcp.server.mcp.caller import app_of, caller_of
from reset_mcp.server.mcp.errors import Tools, tool_errors
from reset_mcp.server.mcp.scopes import CONTACT_READERS
from reset_mcp.vocab import Scope

OptEmail = Annotated[str | None, Field(description="Account email.", max_length=320)]
OptUser = Annotated[AccountId | None, Field(description="Account id.", max_length=200)]
Scalar = str | int | float | bool | None


def register(tool: Tools) -> None:
    @tool(
        title="Check reset abuse",
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    )
    async def check_reset_abuse(
        ctx: Context[Any],
        email: OptEmail = None,
        user_id: OptUser = None,
        ip: Annotated[str | None, Field(description="Also count this IP's requests.", max_length=64)] = None,
        window_minutes: Annotated[int, Field(description="Look-back window.", ge=1, le=10080)] = 60,
    ) -> AbuseResult:
        """Risk of an account's recent reset requests: attempts, risk, reasons and a recommended
        action (allow, captcha, block, alert); the IPs, devices and countries too with the
        contacts:read scope. Give email or user_id."""
        with tool_errors():
            caller = caller_of(ctx, CONTACT_READERS)
            return await app_of(ctx).service.contacts.check_abuse(
                email=email, user_id=user_id, ip=ip, window_minutes=window_minutes, caller=caller
            )

    @tool(
        title="Send a security alert",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
        ),
    )
    async def send_security_alert(
        email: Annotated[str, Field(description="Account email.", max_length=320)],
        reason: Annotated[str, Field(description="Short reason shown to the owner.", max_length=200)],
        ctx: Context[Any],
        user_id: OptUser = None,
        details: Annotated[str | None, Field(description="More detail for the owner.", max_length=1000)] = None,
        locale: Annotated[str | None, Field(description="BCP 47 language tag, e.g. de-AT.", max_length=35)] = None,
        timezone: Annotated[
            str | None, Field(description="IANA timezone for times in the email.", max_length=64)
        ] = None,
    ) -> AlertResult:
        """Email the account owner a security alert. Deduplicated per account, reason and hour; rate limited."""
        with tool_errors():
            return await app_of(ctx).service.contacts.send_security_alert(
                email=email, user_id=user_id, reason=reason, details=details, caller=caller_of(ctx, Scope.SEND),
                locale=locale, timezone=timezone,
            )  # fmt: skip

    @tool(
        title="Record a contact event",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
    async def record_contact_event(
        email: Annotated[str, Field(description="Contact email.", max_length=320)],
        event_type: Annotated[str, Field(description="e.g. login_failed, support_ticket.", max_length=64)],
        ctx: Context[Any],
        metadata: Annotated[
            dict[str, Scalar] | None,
            Field(description="Flat map of string keys to scalars (at most 32 keys, 4 KB)."),
        ] = None,
    ) -> EventRecorded:
        """Add an event to a contact's history (shown by get_contact)."""
        with tool_errors():
            return await app_of(ctx).service.contacts.record_event(
                email, event_type, metadata, caller_of(ctx, Scope.SEND)
            )

    @tool(
        title="Get a contact",
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    )
    async def get_contact(
        email: Annotated[str, Field(description="Contact email.", max_length=320)], ctx: Context[Any]
    ) -> ContactSummary:
        """A contact's security facts (last reset request and IP, known IPs, devices, countries, last
        report) and recent events; without the contacts:read scope, only what your own requests showed."""
        with tool_errors():
            return await app_of(ctx).service.contacts.get_contact(email, caller_of(ctx, CONTACT_READERS))
