"""Tools for the reset itself: request, verify, consume, revoke, report.

`request_password_reset` and `revoke_reset_tokens` take what the configuration allows:
with an account directory the agent names the account (`account`) and the directory
names the recipient; without one, the agent names `email` and `user_id` (local use, or
`RESET_MCP_TRUST_CALLER_RECIPIENT`). One tool name either way, so an agent's prompt
does not change; its input schema says which (tool_schemas/ holds both).
"""

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import InputRequiredResult, ToolAnnotations
from pydantic import Field

from reset_mcp.emails import password_reset
from reset_mcp.errors import InvalidInputError
from reset_mcp.flows.account_reset import AccountInput
from reset_mcp.flows.request import ResetInput
from reset_mcp.models import AccountAnswer, ConsumeResult, ReportResult, ResetRequestResult, RevokeResult, VerifyResult
from reset_mcp.server.mcp.arguments import AccountId
from reset_mcp.server.mcp.caller import app_of, caller_of
from reset_mcp.server.mcp.confirm import confirmed_call
from reset_mcp.server.mcp.errors import Tools, tool_errors
from reset_mcp.validation import normalize_email
from reset_mcp.vocab import Action, Scope

Email = Annotated[str, Field(description="The account's email address.", max_length=320)]
Account = Annotated[
    AccountId,
    Field(
        description="The account as the person named it: their email address or your app's user id. "
        "The recipient comes from your app's account directory, never from this value.",
        max_length=320,
    ),
]
Token = Annotated[str, Field(description="The token from the reset link.", max_length=4096)]
Ip = Annotated[str, Field(description="IP address of the person asking (IPv4 or IPv6).", max_length=64)]
Agent = Annotated[str, Field(description="Their browser's User-Agent header.", max_length=2048)]
Locale = Annotated[str | None, Field(description="BCP 47 language tag, e.g. de-AT.", max_length=35)]
Timezone = Annotated[str | None, Field(description="IANA timezone for times in the email.", max_length=64)]
IdempotencyKey = Annotated[
    str | None,
    Field(
        description="Any unique string (e.g. a UUID) for this request: a retry with the same key and arguments "
        "within 24 hours gets the first answer and sends nothing.",
        max_length=128,
    ),
]
REQUEST_ANNOTATIONS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)
REVOKE_ANNOTATIONS = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)


def _ask_caller_named(app: Any, email: str, ip: str) -> str | None:
    """The question for `confirm_in_client`, only about an email the policy would send on a yes."""
    try:
        recipient = normalize_email(email)
    except InvalidInputError:
        return None  # the flow refuses it
    if app.policy.decide(password_reset.KIND.name, recipient).action != Action.CONFIRM_IN_CLIENT:
        return None
    return f"Send a password reset email to {recipient[:320]} (requested from {ip[:64]})?"


def register(tool: Tools, *, directory: bool) -> None:
    if directory:
        _register_account_tools(tool)
    else:
        _register_caller_named_tools(tool)

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
        title="Report an unrequested reset",
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def report_unrequested_reset(token: Token, ctx: Context[Any]) -> ReportResult:
        """The owner clicked "this wasn't me": revoke that link, record it, and raise the account's risk."""
        with tool_errors():
            return await app_of(ctx).service.report_unrequested_reset(token, caller_of(ctx, Scope.REDEEM))


def _register_caller_named_tools(tool: Tools) -> None:
    @tool(title="Request a password reset", annotations=REQUEST_ANNOTATIONS)
    async def request_password_reset(
        email: Email,
        user_id: Annotated[AccountId, Field(description="Your app's id for the account.", max_length=200)],
        ip: Ip,
        user_agent: Agent,
        ctx: Context[Any],
        name: Annotated[
            str | None,
            Field(
                description="Name to greet the user by: letters, spaces, apostrophes, hyphens and dots only, "
                "else the email greets without it (name_dropped).",
                max_length=200,
            ),
        ] = None,
        location: Annotated[
            str | None,
            Field(
                description="'City, Country' in letters, if your app knows it; else GeoIP (location_dropped).",
                max_length=200,
            ),
        ] = None,
        locale: Locale = None,
        timezone: Timezone = None,
        idempotency_key: IdempotencyKey = None,
    ) -> ResetRequestResult | InputRequiredResult:
        """Email a signed, one-time reset link to the account owner, with who asked (IP, browser,
        location). Never returns the link. Status: sent, queued, pending_approval, blocked,
        rate_limited (see retry_after) or rejected. Without an account directory the address you
        give is used as it is: the server's operator trusts you to name the right one."""
        with tool_errors():
            app, caller = app_of(ctx), caller_of(ctx, Scope.SEND)
            inp = ResetInput(email, user_id, ip, user_agent, name, location, locale, timezone)

            async def run(confirmed: bool | None) -> tuple[ResetRequestResult, str | None]:
                out = await app.service.request_password_reset(
                    inp, caller, confirmed=confirmed, idempotency_key=idempotency_key
                )
                return out, out.approval_id if out.status == "pending_approval" else None

            return await confirmed_call(
                ctx, app, caller, password_reset.KIND.name, question=_ask_caller_named(app, email, ip), run=run,
                model=ResetRequestResult,
            )  # fmt: skip

    @tool(title="Revoke reset tokens", annotations=REVOKE_ANNOTATIONS)
    async def revoke_reset_tokens(
        reason: Annotated[str, Field(description="Why, for the audit log.", max_length=500)],
        ctx: Context[Any],
        email: Annotated[str | None, Field(description="Account email.", max_length=320)] = None,
        user_id: Annotated[AccountId | None, Field(description="Account id.", max_length=200)] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> RevokeResult:
        """Revoke every outstanding reset link of an account (give email or user_id)."""
        with tool_errors():
            return await app_of(ctx).service.revoke_reset_tokens(
                email=email, user_id=user_id, reason=reason, caller=caller_of(ctx, Scope.SEND),
                idempotency_key=idempotency_key,
            )  # fmt: skip


def _register_account_tools(tool: Tools) -> None:
    @tool(title="Request a password reset", annotations=REQUEST_ANNOTATIONS)
    async def request_password_reset(
        account: Account,
        ip: Ip,
        user_agent: Agent,
        ctx: Context[Any],
        locale: Annotated[
            str | None, Field(description="BCP 47 tag, used if the directory gives none.", max_length=35)
        ] = None,
        timezone: Annotated[
            str | None, Field(description="IANA timezone, used if the directory gives none.", max_length=64)
        ] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> AccountAnswer | InputRequiredResult:
        """Email a signed, one-time reset link to the owner of an account, at the address your app's
        directory has for it, with who asked (IP, browser, location). Never returns the link. The
        answer is the same whether or not the account exists: accepted, or rate_limited with
        retry_after; what became of it is for the overseer."""
        with tool_errors():
            app, caller = app_of(ctx), caller_of(ctx, Scope.SEND)
            inp = AccountInput(account, ip, user_agent, locale, timezone)
            question = None
            if app.policy.mode_for(password_reset.KIND.name) == "confirm_in_client":
                question = f"Send a password reset email for the account {account[:320]} (requested from {ip[:64]})?"

            async def run(confirmed: bool | None) -> tuple[AccountAnswer, str | None]:
                out = await app.service.request_reset_for_account(
                    inp, caller, confirmed=confirmed, idempotency_key=idempotency_key
                )
                return out.answer, out.approval_id

            return await confirmed_call(
                ctx, app, caller, password_reset.KIND.name, question=question, run=run, model=AccountAnswer
            )

    @tool(title="Revoke reset tokens", annotations=REVOKE_ANNOTATIONS)
    async def revoke_reset_tokens(
        account: Account,
        reason: Annotated[str, Field(description="Why, for the audit log.", max_length=500)],
        ctx: Context[Any],
        idempotency_key: IdempotencyKey = None,
    ) -> RevokeResult:
        """Revoke every outstanding reset link of an account. The answer does not say how many (or
        whether the account exists)."""
        with tool_errors():
            return await app_of(ctx).service.revoke_reset_tokens(
                account=account, reason=reason, caller=caller_of(ctx, Scope.SEND), idempotency_key=idempotency_key
            )
