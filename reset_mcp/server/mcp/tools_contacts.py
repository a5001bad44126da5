"""Tools for abuse checks, security alerts and the contact history.

With an account directory, `check_reset_abuse` and `send_security_alert` take the account
as the agent names it (as `request_password_reset` does), and answer alike for a known
and an unknown account.
"""

from datetime import datetime
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field

from reset_mcp.flows.request import FactsInput
from reset_mcp.models import AbuseResult, AccountAnswer, AlertReasonName, AlertResult, ContactSummary, EventRecorded
from reset_mcp.server.mcp.arguments import AccountId
from reset_mcp.server.mcp.caller import app_of, caller_of
from reset_mcp.server.mcp.errors import Tools, tool_errors
from reset_mcp.server.mcp.scopes import CONTACT_READERS
from reset_mcp.vocab import Scope

OptEmail = Annotated[str | None, Field(description="Account email.", max_length=320)]
OptUser = Annotated[AccountId | None, Field(description="Account id.", max_length=200)]
Scalar = str | int | float | bool | None


class Facts(BaseModel):
    """What the alert may say it saw: typed facts, shown by our templates (never free text)."""

    model_config = ConfigDict(extra="forbid")

    at: datetime | None = Field(None, description="When it happened (ISO 8601; UTC if no offset).")
    ip: str | None = Field(None, description="The IP address involved.", max_length=64)
    user_agent: str | None = Field(
        None, description="The User-Agent involved; the email shows our device label for it.", max_length=2048
    )
    location: str | None = Field(
        None, description="'City, Country' in letters; else the IP's GeoIP location.", max_length=200
    )

    def flow(self) -> FactsInput:
        return FactsInput(self.at, self.ip, self.user_agent, self.location)


Reason = Annotated[
    AlertReasonName,
    Field(description="Why: a code the email words in the owner's language (there is no free text)."),
]
IdempotencyKey = Annotated[
    str | None,
    Field(
        description="Any unique string for this call: a retry with the same key and arguments within 24 hours "
        "gets the first answer and does nothing again.",
        max_length=128,
    ),
]
ALERT_ANNOTATIONS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
CHECK_ANNOTATIONS = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
Window = Annotated[int, Field(description="Look-back window.", ge=1, le=10080)]
AlsoIp = Annotated[str | None, Field(description="Also count this IP's requests.", max_length=64)]


def register(tool: Tools, *, directory: bool) -> None:
    if directory:
        _register_account_tools(tool)
    else:
        _register_caller_named_tools(tool)

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
        idempotency_key: IdempotencyKey = None,
    ) -> EventRecorded:
        """Add an event to a contact's history (shown by get_contact)."""
        with tool_errors():
            return await app_of(ctx).service.contacts.record_event(
                email, event_type, metadata, caller_of(ctx, Scope.SEND), idempotency_key=idempotency_key
            )

    @tool(title="Get a contact", annotations=CHECK_ANNOTATIONS)
    async def get_contact(
        email: Annotated[str, Field(description="Contact email.", max_length=320)], ctx: Context[Any]
    ) -> ContactSummary:
        """A contact's security facts (last reset request and IP, known IPs, devices, countries, last
        report) and recent events; without the contacts:read scope, only what your own requests showed
        (with an account directory, only the events you recorded)."""
        with tool_errors():
            return await app_of(ctx).service.contacts.get_contact(email, caller_of(ctx, CONTACT_READERS))


def _register_caller_named_tools(tool: Tools) -> None:
    @tool(title="Check reset abuse", annotations=CHECK_ANNOTATIONS)
    async def check_reset_abuse(
        ctx: Context[Any],
        email: OptEmail = None,
        user_id: OptUser = None,
        ip: AlsoIp = None,
        window_minutes: Window = 60,
    ) -> AbuseResult:
        """Risk of an account's recent reset requests: attempts, risk, reasons and a recommended
        action (allow, captcha, block, alert); the IPs, devices and countries too with the
        contacts:read scope. Give email or user_id."""
        with tool_errors():
            caller = caller_of(ctx, CONTACT_READERS)
            return await app_of(ctx).service.contacts.check_abuse(
                email=email, user_id=user_id, ip=ip, window_minutes=window_minutes, caller=caller
            )

    @tool(title="Send a security alert", annotations=ALERT_ANNOTATIONS)
    async def send_security_alert(
        email: Annotated[str, Field(description="Account email.", max_length=320)],
        reason: Reason,
        ctx: Context[Any],
        user_id: OptUser = None,
        facts: Annotated[Facts | None, Field(description="What happened, as typed facts.")] = None,
        locale: Annotated[str | None, Field(description="BCP 47 language tag, e.g. de-AT.", max_length=35)] = None,
        timezone: Annotated[
            str | None, Field(description="IANA timezone for times in the email.", max_length=64)
        ] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> AlertResult:
        """Email the account owner a security alert, worded by our templates from the reason code and
        facts. Deduplicated per account, reason and hour; rate limited."""
        with tool_errors():
            return await app_of(ctx).service.contacts.send_security_alert(
                email=email, user_id=user_id, reason=reason, facts=facts.flow() if facts else None,
                caller=caller_of(ctx, Scope.SEND), locale=locale, timezone=timezone, idempotency_key=idempotency_key,
            )  # fmt: skip


def _register_account_tools(tool: Tools) -> None:
    Account = Annotated[
        AccountId,
        Field(description="The account as the person named it: their email or your app's user id.", max_length=320),
    ]

    @tool(title="Check reset abuse", annotations=CHECK_ANNOTATIONS)
    async def check_reset_abuse(
        account: Account, ctx: Context[Any], ip: AlsoIp = None, window_minutes: Window = 60
    ) -> AbuseResult:
        """Risk of the reset requests made for an account as it was named: attempts, risk, reasons and
        a recommended action (the IPs, devices and countries too with the contacts:read scope). The
        same whether or not the account exists."""
        with tool_errors():
            caller = caller_of(ctx, CONTACT_READERS)
            return await app_of(ctx).service.contacts.check_abuse(
                account=account, ip=ip, window_minutes=window_minutes, caller=caller
            )

    @tool(title="Send a security alert", annotations=ALERT_ANNOTATIONS)
    async def send_security_alert(
        account: Account,
        reason: Reason,
        ctx: Context[Any],
        facts: Annotated[Facts | None, Field(description="What happened, as typed facts.")] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> AccountAnswer:
        """Email an account's owner a security alert, at the address your app's directory has, worded by
        our templates from the reason code and facts. The answer is the same whether or not the account
        exists: accepted, or rate_limited with retry_after."""
        with tool_errors():
            outcome = await app_of(ctx).service.contacts.alert_account(
                account=account, reason=reason, facts=facts.flow() if facts else None,
                caller=caller_of(ctx, Scope.SEND), idempotency_key=idempotency_key,
            )  # fmt: skip
            return outcome.answer
