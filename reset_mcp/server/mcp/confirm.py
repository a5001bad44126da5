"""`confirm` oversight mode: ask the human in the agent's client through MCP elicitation.

A resolver runs before the tool body. It asks only when the policy says `confirm` for
reset emails and the client declared the elicitation capability; otherwise it answers
`NotAsked` and the service decides (a client that cannot ask gets the email held for
approval, as in `gated`). SDK 2.x routes the question the right way for both protocol
eras, which `ctx.elicit()` inside the body would not.
"""

from typing import Annotated, Any

from mcp.server.elicitation import AcceptedElicitation, ElicitationResult
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Elicit, Resolve
from pydantic import BaseModel, Field

from reset_mcp.emails import password_reset
from reset_mcp.errors import InvalidInputError
from reset_mcp.server.mcp.caller import app_of
from reset_mcp.validation import normalize_email
from reset_mcp.vocab import Action


class ConfirmSend(BaseModel):
    send: bool = Field(description="Send this password reset email now?")


class NotAsked(BaseModel):
    why: str


class Confirmation:
    """The outcome the service understands: True, False, or None (nobody was asked)."""

    def __init__(self, confirmed: bool | None) -> None:
        self.confirmed = confirmed


async def ask_to_confirm(ctx: Context[Any], email: str, ip: str) -> Elicit[ConfirmSend] | NotAsked:
    # async although it awaits nothing: the SDK runs a sync resolver in a worker thread,
    # a thread hop on every request_password_reset call for work that never blocks.
    app = app_of(ctx)
    try:
        recipient = normalize_email(email)
    except InvalidInputError:
        return NotAsked(why="invalid email: the service refuses it")
    # Ask only about an email the policy would send on a yes: never about one that a
    # recipient rule blocks anyway (the person would say yes and see it blocked).
    if app.policy.decide(password_reset.KIND.name, recipient).action != Action.CONFIRM:
        return NotAsked(why="policy does not ask")
    caps = ctx.client_capabilities
    if not (caps and caps.elicitation):
        return NotAsked(why="client cannot elicit")
    # Only what the person needs to decide; the message is shown verbatim by the client.
    return Elicit(f"Send a password reset email to {email[:320]} (requested from {ip[:64]})?", ConfirmSend)


def to_confirmation(result: ElicitationResult[Any]) -> Confirmation:
    if isinstance(result, AcceptedElicitation):
        data = result.data
        if isinstance(data, ConfirmSend):
            return Confirmation(data.send)
        return Confirmation(None)  # NotAsked
    return Confirmation(False)  # declined or cancelled


confirmation_param = Annotated[ElicitationResult[ConfirmSend], Resolve(ask_to_confirm)]
