"""Confirmations through the agent's client, in both protocol eras.

`confirm`: the send is held (as in `gated`) and the client is pointed, by URL-mode
elicitation, at this server's page for that approval, where a person signed in with an
`approve` key decides. The URL carries only the approval's random id: it is not a
signed, pre-authenticated link, and opening it proves nothing. An `accept` from the
client means only "the user agreed to open the page", so an auto-accepting client gets
nothing sent; a `decline` withdraws the held send (a client can only stop its own
request). Without URL support, or without a back-channel (stateless HTTP), the send
simply waits for a decision on the overseer's channels.

`confirm_in_client`: the client asks its user (form elicitation) before anything is
written. This trusts the client software: a client that auto-accepts confirms its own
sends. A client that cannot ask gets the send held for approval.

Handshake era (up to 2025-11-25): a request to the client in the middle of the call.
Modern era (2026-07-28): the tool answers `InputRequiredResult` and the client calls
again with the answer; for `confirm` the first round has already held the send, and the
state the SDK seals (encrypted, bound to the caller, ten minutes) carries its answer, so
the second round sends nothing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mcp.server.elicitation import AcceptedElicitation, render_elicitation_schema
from mcp.server.mcpserver import Context
from mcp_types import (
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitRequestURLParams,
    ElicitResult,
    InputRequiredResult,
)
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, Field

from reset_mcp.app import App
from reset_mcp.deps import Caller
from reset_mcp.vocab import Mode

M = TypeVar("M", bound=BaseModel)
MODERN = "2026-07-28"
FORM_KEY, PAGE_KEY = "confirm", "approvals_page"
PAGE_STATE = "reset-mcp/approvals-page:"
PAGE_MESSAGE = (
    "This email waits for a person's decision. Open the approvals page and sign in with an "
    "approve key to send or reject it; nothing is sent until then."
)
DECLINED = "declined in the agent's client"


class ConfirmSend(BaseModel):
    send: bool = Field(description="Send this email now?")


def _modern(ctx: Context[Any]) -> bool:
    version = ctx.protocol_version
    return version is not None and is_version_at_least(version, MODERN)


def _elicitation(ctx: Context[Any]) -> Any:
    try:
        caps = ctx.client_capabilities
    except Exception:
        return None
    return caps.elicitation if caps else None


def can_ask_form(ctx: Context[Any]) -> bool:
    found = _elicitation(ctx)
    # A bare `elicitation: {}` (before modes existed) means form.
    return found is not None and (found.form is not None or found.url is None)


def can_open_url(ctx: Context[Any]) -> bool:
    found = _elicitation(ctx)
    if found is None or found.url is None:
        return False  # the spec: never send a mode the client did not declare
    return _modern(ctx) or ctx.request_context.session.can_send_request


async def ask_in_client(ctx: Context[Any], question: str) -> bool | InputRequiredResult | None:
    """`confirm_in_client`: True or False from the user, None when the client cannot ask,
    or (modern era, first round) the request the client must answer first."""
    if not can_ask_form(ctx):
        return None
    if _modern(ctx):
        answer = (ctx.input_responses or {}).get(FORM_KEY)
        if isinstance(answer, ElicitResult):
            return answer.action == "accept" and bool((answer.content or {}).get("send") is True)
        schema = render_elicitation_schema(ConfirmSend)
        request = ElicitRequest(params=ElicitRequestFormParams(message=question, requested_schema=schema))
        return InputRequiredResult(input_requests={FORM_KEY: request})
    result = await ctx.elicit(question, ConfirmSend)
    return isinstance(result, AcceptedElicitation) and result.data.send is True


Run = Callable[[bool | None], Awaitable[tuple[M, str | None]]]


async def confirmed_call(
    ctx: Context[Any],
    app: App,
    caller: Caller,
    kind: str,
    *,
    question: str | None,
    run: Run[M],
    model: type[M],
) -> M | InputRequiredResult:
    """Run a tool that may send `kind`, asking wherever the policy's mode says to.

    `question`: what to ask in the client when the policy says `confirm_in_client` for
    this email (None: nothing to ask).
    `run(confirmed)` returns the answer and, when the send is held, its approval id."""
    if (state := ctx.request_state) is not None and state.startswith(PAGE_STATE):
        return await _page_answered(ctx, app, caller, json.loads(state.removeprefix(PAGE_STATE)), model)
    confirmed = None
    if question is not None:
        asked = await ask_in_client(ctx, question)
        if isinstance(asked, InputRequiredResult):
            return asked
        confirmed = asked
    answer, held = await run(confirmed)
    if held is None or app.policy.mode_for(kind) != Mode.CONFIRM or not can_open_url(ctx):
        return answer
    url = f"{app.settings.public_base_url}/admin/approvals/{held}"
    if _modern(ctx):
        request = ElicitRequest(params=ElicitRequestURLParams(message=PAGE_MESSAGE, url=url))
        sealed = PAGE_STATE + json.dumps({"approval": held, "answer": answer.model_dump(mode="json")})
        return InputRequiredResult(input_requests={PAGE_KEY: request}, request_state=sealed)
    result = await ctx.elicit_url(PAGE_MESSAGE, url, held)
    return await _outcome(app, caller, held, result.action, answer)


async def _page_answered(ctx: Context[Any], app: App, caller: Caller, state: dict[str, Any], model: type[M]) -> M:
    """Modern era, second round: the send was held in the first; only the client's answer is new."""
    response = (ctx.input_responses or {}).get(PAGE_KEY)
    action = response.action if isinstance(response, ElicitResult) else "cancel"
    return await _outcome(app, caller, str(state["approval"]), action, model.model_validate(state["answer"]))


async def _outcome(app: App, caller: Caller, approval_id: str, action: str, answer: M) -> M:
    desk = app.service.approvals
    await desk.record_page_offer(approval_id, caller, action)
    if action == "accept":  # the user agreed to open the page; the decision is made there
        return answer
    withdrawn = await desk.withdraw(approval_id, caller, DECLINED)
    # Without a directory the agent was told `pending_approval`; with one it heard only
    # `accepted`, and still does (a known account's send must not read differently).
    if withdrawn and getattr(answer, "status", None) == "pending_approval":
        return answer.model_copy(update={"status": "rejected", "reason": DECLINED})
    return answer
