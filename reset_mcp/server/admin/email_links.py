"""The pages behind the approve / reject links in the overseer's notice email.

    GET  /admin/decide/{id}/{action}?exp=..&sig=..   a confirmation page; it NEVER decides
    POST /admin/decide/{id}/{action}                 exp, sig, csrf, reason -> decides

Mail scanners (Outlook Safe Links and others) fetch every link in a message, so only the
page's POST decides, as `email:<overseer>`. The signature is checked first (a forged or
altered link learns nothing about the approval), then the approval's status: a decided
approval answers "already decided" (200 on GET, 409 on POST), an ended window 410.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from reset_mcp.deps import Caller
from reset_mcp.errors import InvalidInputError
from reset_mcp.models import ApprovalView
from reset_mcp.server.admin import session as s
from reset_mcp.server.admin.pages import Pages
from reset_mcp.server.admin.views import given_rows, kind_label, try_render, until, when
from reset_mcp.server.http.auth import HTTPProblem
from reset_mcp.vocab import ApprovalStatus, Scope


class EmailDecisions:
    def __init__(self, site: Pages) -> None:
        self.site = site

    async def _from_link(
        self, request: Request, exp: str | None, sig: str | None, decided_status: int
    ) -> tuple[ApprovalView, Response | None]:
        """The approval a signed link names, or the page that says why it cannot be decided."""
        site, links = self.site, self.site.app.approval_links
        if links is None:
            raise HTTPProblem(404, "approval by email is off (set RESET_MCP_OVERSIGHT_EMAIL)")
        approval_id, action, now = request.path_params["id"], request.path_params["action"], site.now()
        state = links.check(approval_id, action, exp, sig, now)
        if state == "invalid":
            raise HTTPProblem(403, "This link is not valid. Use the link from the email as it was sent.")
        approval = await site.app.service.approvals.get(approval_id)
        if approval.status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
            by = f"{approval.status} by {approval.decided_by} ({when(approval.decided_at)})"
            text = f"This email was already {by}. Each link works once."
            return approval, site.message(request, decided_status, "Already decided", text)
        if approval.status != ApprovalStatus.PENDING or state == "expired" or approval.expires_at <= now:
            return approval, site.message(request, 410, "Expired", "The approval window has ended; nothing was sent.")
        return approval, None

    async def _confirm(
        self, request: Request, approval: ApprovalView, form: dict[str, str], status: int = 200, **ctx: Any
    ) -> Response:
        site = self.site
        links = site.app.approval_links
        assert links is not None
        send = await site.app.service.admin.send(approval.request_id)
        now = site.now()
        return site.page(
            request, "decide.html.j2", status, approval=approval, action=request.path_params["action"],
            kind_label=kind_label(site.app, approval.kind),
            exp=form.get("exp", ""), sig=form.get("sig", ""), overseer=links.overseer,
            expires_in=until(approval.expires_at, now), expires=when(approval.expires_at),
            rendered=try_render(site.app, send, now), given=given_rows(approval), **ctx,
        )  # fmt: skip

    async def page(self, request: Request) -> Response:
        query = {"exp": request.query_params.get("exp", ""), "sig": request.query_params.get("sig", "")}
        approval, refused = await self._from_link(request, query["exp"], query["sig"], 200)
        if refused is not None:
            return refused
        return await self._confirm(request, approval, query, error=None)

    async def decide(self, request: Request) -> Response:
        site = self.site
        form = await site.post_form(request, s.form_nonce(request))
        approval, refused = await self._from_link(request, form.get("exp"), form.get("sig"), 409)
        if refused is not None:
            return refused
        links = site.app.approval_links
        assert links is not None
        caller = Caller(f"email:{links.overseer}", frozenset({Scope.APPROVE}))
        try:
            decision = await site.decide_as(approval.id, request.path_params["action"], caller, form.get("reason"))
        except InvalidInputError as exc:
            return await self._confirm(request, approval, form, 400, error=str(exc))
        delivery = f" Delivery: {decision.delivery.status}." if decision.delivery else ""
        title = "Approved" if decision.status == ApprovalStatus.APPROVED else "Rejected"
        text = f"The email to {approval.recipient} was {decision.status} as {caller.id}.{delivery}"
        return site.message(request, 200, title, text)
