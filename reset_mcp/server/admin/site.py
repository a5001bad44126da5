"""The overseer's approvals page at /admin, and the pages behind the approval links in emails.

    GET  /admin                              sign-in form, or the held emails and recent audit
    POST /admin/signin                       an API key with the `approve` scope -> session cookie
    POST /admin/signout                      ends the session in the store (every instance)
    POST /admin/approvals/{id}/{action}      approve | reject, decided as `key:<id>` (as over REST)
    GET  /admin/approvals/{id}               one held email and its buttons: where `confirm` mode's URL
                                             elicitation points (sign-in first; no key in the URL)
    GET  /admin/approvals/{id}/preview       the held email's HTML, link masked (framed, sandboxed)
    GET  /admin/decide/{id}/{action}         from the notice email: a confirmation page, never decides
    POST /admin/decide/{id}/{action}         decides as `email:<overseer>`
    GET  /admin/static/admin.css             the style sheet (no inline style or script anywhere)

Every decision goes through `ApprovalDesk`, as the CLI and REST do: one record, one audit
chain, a second decision refused (409) whatever the channel. Shared page plumbing:
`pages.py`; sessions, CSRF, headers: `session.py`; the pages behind signed links:
`email_links.py`.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from reset_mcp.canonical import net_of_stored
from reset_mcp.deps import Caller
from reset_mcp.errors import ResetMCPError, StoreError, refusal
from reset_mcp.links import ACTIONS
from reset_mcp.policy.throttle import ClientThrottle
from reset_mcp.server.admin import session as s
from reset_mcp.server.admin.audit_lines import Names, audit_lines
from reset_mcp.server.admin.email_links import EmailDecisions
from reset_mcp.server.admin.pages import TEMPLATES, Pages
from reset_mcp.server.admin.views import kind_label, pending_item, try_render, when
from reset_mcp.server.http.auth import AppHolder, HTTPProblem
from reset_mcp.vocab import ApprovalStatus, Scope

_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NEXT_RE = re.compile(r"/admin/approvals/[A-Za-z0-9_-]{1,64}")


class AdminSite(Pages):
    def __init__(self, holder: AppHolder, *, base_url: str, loopback: bool) -> None:
        super().__init__(holder, base_url=base_url, loopback=loopback)
        self.throttle = ClientThrottle()  # failed sign-ins per client address
        self.email = EmailDecisions(self)

    def routes(self) -> list[Route]:
        return [
            Route("/admin", self.index, methods=["GET"]),
            Route("/admin/signin", self.signin, methods=["POST"]),
            Route("/admin/signout", self.signout, methods=["POST"]),
            Route("/admin/static/admin.css", self.css, methods=["GET"]),
            Route("/admin/approvals/{id}", self.one, methods=["GET"]),
            Route("/admin/approvals/{id}/preview", self.preview, methods=["GET"]),
            Route("/admin/approvals/{id}/{action}", self.decide, methods=["POST"]),
            Route("/admin/decide/{id}/{action}", self.email.page, methods=["GET"]),
            Route("/admin/decide/{id}/{action}", self.email.decide, methods=["POST"]),
        ]

    async def index(self, request: Request, error: str | None = None, status: int = 200) -> Response:
        signed = await self.session(request)
        if signed is None:
            return self.signin_page(request)
        session, record = signed
        app, now = self.app, self.now()
        wanted = request.query_params.get("decided", "")
        shown = await app.service.admin.pending_page(decided=wanted if _ID_RE.fullmatch(wanted) else None)
        names = Names(shown.names)
        activity = shown.activity.get
        items = [pending_item(app, view, send, now, activity(view.recipient), names) for view, send in shown.pending]
        audit = audit_lines(shown.audit, names, shown.subjects, lambda kind: kind_label(app, kind))
        decided_by = names(shown.decided.decided_by) if shown.decided else None
        return self.page(
            request, "pending.html.j2", status, session.value, signed_in=names(f"key:{record.id}"), error=error,
            items=items, audit=audit, decided=shown.decided, decided_by=decided_by, when=when,
        )  # fmt: skip

    async def one(self, request: Request) -> Response:
        """One held email, as the agent's client opened it (URL elicitation in `confirm` mode).

        The URL names the approval only; whoever opens it signs in with an `approve` key
        first, and the key that asked for the send cannot decide it (the desk refuses)."""
        approval_id = request.path_params["id"]
        if not _ID_RE.fullmatch(approval_id):
            raise HTTPProblem(404, "no such approval")
        signed = await self.session(request)
        if signed is None:
            return self.signin_page(request, next_page=f"/admin/approvals/{approval_id}")
        session, record = signed
        app, now = self.app, self.now()
        view = await app.service.approvals.get(approval_id)
        shown = await app.service.admin.pending_page(audit_limit=0)
        names = Names(shown.names)
        item, decided = None, None
        if view.status == ApprovalStatus.PENDING and view.expires_at > now:
            send = await app.service.admin.send(view.request_id)
            item = pending_item(app, view, send, now, shown.activity.get(view.recipient), names)
        else:
            by = f" by {names(view.decided_by)}" if view.decided_by else ""
            decided = f"This email was already {view.status}{by} ({when(view.decided_at or view.expires_at)})."
        return self.page(
            request, "approval.html.j2", 200, session.value, signed_in=names(f"key:{record.id}"), item=item,
            decided=decided, error=None,
        )  # fmt: skip

    async def signin(self, request: Request) -> Response:
        form = await self.post_form(request, s.form_nonce(request))
        # Per host network (an IPv6 /64), so a guesser cannot step through its addresses.
        client = net_of_stored(request.client.host if request.client else None) or "unknown"
        wanted = form.get("next", "")
        back = wanted if _NEXT_RE.fullmatch(wanted) else None  # only our own approval pages
        wait = self.throttle.retry_after(client)
        if wait is not None:
            response = self.signin_page(
                request, 429, f"Too many failed sign-ins; try again in {wait} seconds.", next_page=back
            )
            response.headers["Retry-After"] = str(wait)
            return response
        record = await self.app.service.keys.authenticate(form.get("key", "").strip())
        if record is None:
            self.throttle.failed(client)
            return self.signin_page(
                request, 401, "That key is not valid: mistyped, revoked, or not a reset-mcp key.", next_page=back
            )
        if Scope.APPROVE not in record.scopes:
            return self.signin_page(
                request, 403, "This key lacks the 'approve' scope; sign in with an overseer's key.", next_page=back
            )
        session = self.codec.issue(record.id, self.now())
        await self.app.service.admin.sign_in(record, session.id, session.expires_at)
        response = RedirectResponse(back or "/admin", status_code=303, headers=s.SECURITY_HEADERS)
        max_age = int(self.codec.ttl.total_seconds())
        s.set_cookie(response, s.SESSION_COOKIE, session.value, max_age=max_age, secure=self.secure)
        return response

    async def signout(self, request: Request) -> Response:
        signed = await self.session(request)
        if signed is not None:
            await self.post_form(request, signed[0].value)
            await self.app.service.admin.sign_out(signed[0].id, signed[1])  # the cookie is dead everywhere
        response = RedirectResponse("/admin", status_code=303, headers=s.SECURITY_HEADERS)
        s.clear_cookie(response, s.SESSION_COOKIE, secure=self.secure)
        return response

    async def decide(self, request: Request) -> Response:
        signed = await self.session(request)
        if signed is None:
            return self.signin_page(request, 401, "Your session ended; sign in again.")
        session, record = signed
        form = await self.post_form(request, session.value)
        approval_id, action = request.path_params["id"], request.path_params["action"]
        if action not in ACTIONS:
            raise HTTPProblem(404, "no such action")
        caller = Caller(f"key:{record.id}", frozenset(record.scopes))
        try:
            await self.decide_as(approval_id, action, caller, form.get("reason"))
        except ResetMCPError as exc:
            if isinstance(exc, StoreError):
                raise
            answer = refusal(exc)  # shown on the page itself, beside the held emails
            return await self.index(request, error=answer.message, status=answer.status)
        return RedirectResponse(f"/admin?decided={approval_id}", status_code=303, headers=s.SECURITY_HEADERS)

    async def preview(self, request: Request) -> Response:
        if await self.session(request) is None:
            raise HTTPProblem(401, "sign in to see held emails")
        approval = await self.app.service.approvals.get(request.path_params["id"])
        rendered = try_render(self.app, await self.app.service.admin.send(approval.request_id), self.now())
        if rendered is None:
            raise HTTPProblem(404, "no preview for this email")
        return HTMLResponse(rendered.html, headers=s.PREVIEW_HEADERS)

    async def css(self, request: Request) -> Response:
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return FileResponse(TEMPLATES / "admin.css", media_type="text/css", headers=headers)
