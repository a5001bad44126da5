"""The overseer's approvals page at /admin, and the pages behind the approval links in emails.

    GET  /admin                              sign-in form, or the held emails and recent audit
    POST /admin/signin                       an API key with the `approve` scope -> session cookie
    POST /admin/signout
    POST /admin/approvals/{id}/{action}      approve | reject, decided as `key:<id>` (as over REST)
    GET  /admin/approvals/{id}/preview       the held email's HTML, link masked (framed, sandboxed)
    GET  /admin/decide/{id}/{action}         from the notice email: a confirmation page, never decides
    POST /admin/decide/{id}/{action}         decides as `email:<overseer>`
    GET  /admin/static/admin.css             the style sheet (no inline style or script anywhere)

Every decision goes through `ApprovalDesk`, as the CLI and REST do: one record, one audit
chain, a second decision refused (409) whatever the channel. Sessions, CSRF, headers:
`admin_session`; signed links: `approval_links`; the pages behind them: `admin_email`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from reset_mcp.app import App, load_or_create_secret
from reset_mcp.deps import Caller
from reset_mcp.errors import InvalidInputError, ResetMCPError, StoreError
from reset_mcp.keys import verify_key
from reset_mcp.links import ACTIONS, ApprovalLinks
from reset_mcp.models import ApprovalDecision
from reset_mcp.server.admin import session as s
from reset_mcp.server.admin.email_links import EmailDecisions
from reset_mcp.server.admin.views import audit_rows, pending_item, try_render, when
from reset_mcp.server.http.auth import AppHolder, HTTPProblem
from reset_mcp.server.http.rest import ClientThrottle
from reset_mcp.store.records import ApiKeyRecord

TEMPLATES = Path(__file__).parent / "templates"
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
Handler = Callable[[Request], Awaitable[Response]]


class AdminSite:
    def __init__(self, holder: AppHolder, *, base_url: str, loopback: bool) -> None:
        # Cookies are Secure unless the browser reaches us over plain http on loopback.
        self.holder, self.base_url = holder, base_url.rstrip("/")
        self.secure = not loopback or self.base_url.startswith("https://")
        self.own_origin = s.origin_of(self.base_url)  # a POST must come from here (or the Host it used)
        self.codec: s.SessionCodec | None = None
        self.links: ApprovalLinks | None = None
        self.throttle = ClientThrottle()  # failed sign-ins per client address
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)
        self.email = EmailDecisions(self)

    def started(self, app: App) -> None:
        """Derive the keys from the server secret; turn on approval links in the notice email."""
        secret = load_or_create_secret(app.settings)
        self.codec = s.SessionCodec(secret)
        overseer = app.settings.oversight_email
        self.links = ApprovalLinks(secret, self.base_url, overseer) if overseer else None
        app.dispatcher.messages.approval_links = self.links
        s.redact_access_log(logging.getLogger("uvicorn.access"))

    def routes(self) -> list[Route]:
        h = self._handled
        return [
            Route("/admin", h(self.index), methods=["GET"]),
            Route("/admin/signin", h(self.signin), methods=["POST"]),
            Route("/admin/signout", h(self.signout), methods=["POST"]),
            Route("/admin/static/admin.css", self.css, methods=["GET"]),
            Route("/admin/approvals/{id}/preview", h(self.preview), methods=["GET"]),
            Route("/admin/approvals/{id}/{action}", h(self.decide), methods=["POST"]),
            Route("/admin/decide/{id}/{action}", h(self.email.page), methods=["GET"]),
            Route("/admin/decide/{id}/{action}", h(self.email.decide), methods=["POST"]),
        ]

    # -- plumbing ------------------------------------------------------------------------

    def _handled(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPProblem as exc:
                response = self.message(request, exc.status, "Refused", exc.message)
                response.headers.update(exc.headers)
                return response
            except StoreError:
                return self.message(request, 503, "Unavailable", "The database is unavailable; try again shortly.")
            except ResetMCPError as exc:
                return self.message(request, s.status_of(exc), "Refused", str(exc))

        return endpoint

    @property
    def app(self) -> App:
        return self.holder.get()

    def now(self) -> datetime:
        return self.app.clock.now()

    def page(self, request: Request, name: str, status: int = 200, binding: str | None = None, **ctx: Any) -> Response:
        """A page; forms on it get a CSRF token bound to `binding` (the session), else to a form cookie."""
        assert self.codec is not None
        nonce = None
        if binding is None:
            binding = s.form_nonce(request)
            if binding is None:
                binding = nonce = s.new_form_nonce()
        ctx.setdefault("signed_in", None)
        html = self.env.get_template(name).render(
            product=self.app.settings.product_name, csrf=self.codec.csrf_for(binding), **ctx
        )
        response = HTMLResponse(html, status_code=status, headers=s.SECURITY_HEADERS)
        if nonce is not None:
            s.set_cookie(response, s.FORM_COOKIE, nonce, max_age=s.FORM_COOKIE_SECONDS, secure=self.secure)
        return response

    def message(self, request: Request, status: int, title: str, text: str, **ctx: Any) -> Response:
        return self.page(request, "message.html.j2", status, title=title, text=text, **ctx)

    async def session(self, request: Request) -> tuple[s.Session, ApiKeyRecord] | None:
        """The signed-in key, re-read on every request: a revoked key's sessions end at once."""
        assert self.codec is not None
        session = self.codec.read(request.cookies.get(s.SESSION_COOKIE), self.now())
        if session is None:
            return None
        async with self.app.store.transaction() as tx:
            record = await tx.get_api_key(session.key_id)
        if record is None or record.revoked_at is not None or "approve" not in record.scopes:
            return None
        return session, record

    async def post_form(self, request: Request, binding: str | None) -> dict[str, str]:
        """Origin first, then the CSRF token (constant-time): 403 for either."""
        assert self.codec is not None
        s.check_origin(request, self.own_origin)
        form = await s.read_form(request)
        if not self.codec.csrf_ok(binding, form.get("csrf")):
            raise HTTPProblem(403, "the form's security token is missing or stale; reload the page and try again")
        return form

    def signin_page(self, request: Request, status: int = 200, error: str | None = None) -> Response:
        response = self.page(request, "signin.html.j2", status, error=error)
        if request.cookies.get(s.SESSION_COOKIE):
            s.clear_cookie(response, s.SESSION_COOKIE, secure=self.secure)
        return response

    # -- the approvals page ----------------------------------------------------------------

    async def index(self, request: Request, error: str | None = None, status: int = 200) -> Response:
        signed = await self.session(request)
        if signed is None:
            return self.signin_page(request)
        session, record = signed
        app, now = self.app, self.now()
        pending = (await app.service.approvals.list_pending(100)).pending
        wanted = request.query_params.get("decided", "")
        async with app.store.transaction() as tx:
            sends = {v.id: await tx.get_send(v.request_id) for v in pending}
            audit = await tx.list_audit(newest=True, limit=30)
            decided = await tx.get_approval(wanted) if _ID_RE.fullmatch(wanted) else None
        return self.page(
            request, "pending.html.j2", status, session.value, signed_in=f"key:{record.id}", error=error,
            items=[pending_item(app, v, sends[v.id], now) for v in pending], audit=audit_rows(audit),
            decided=decided, when=when,
        )  # fmt: skip

    async def signin(self, request: Request) -> Response:
        assert self.codec is not None
        form = await self.post_form(request, s.form_nonce(request))
        client = request.client.host if request.client else "unknown"
        wait = self.throttle.retry_after(client)
        if wait is not None:
            response = self.signin_page(request, 429, f"Too many failed sign-ins; try again in {wait} seconds.")
            response.headers["Retry-After"] = str(wait)
            return response
        now = self.now()
        async with self.app.store.transaction() as tx:
            record = await verify_key(tx, form.get("key", "").strip())
            if record is not None and "approve" in record.scopes:
                await tx.append_audit(
                    at=now, actor=f"key:{record.id}", action="admin_signin", subject=record.id, detail={}
                )
        if record is None:
            self.throttle.failed(client)
            return self.signin_page(request, 401, "That key is not valid: mistyped, revoked, or not a reset-mcp key.")
        if "approve" not in record.scopes:
            return self.signin_page(request, 403, "This key lacks the 'approve' scope; sign in with an overseer's key.")
        session = self.codec.issue(record.id, now)
        response = RedirectResponse("/admin", status_code=303, headers=s.SECURITY_HEADERS)
        max_age = int(self.codec.ttl.total_seconds())
        s.set_cookie(response, s.SESSION_COOKIE, session.value, max_age=max_age, secure=self.secure)
        return response

    async def signout(self, request: Request) -> Response:
        signed = await self.session(request)
        if signed is not None:
            await self.post_form(request, signed[0].value)
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
            return await self.index(request, error=str(exc), status=s.status_of(exc))
        return RedirectResponse(f"/admin?decided={approval_id}", status_code=303, headers=s.SECURITY_HEADERS)

    async def decide_as(self, approval_id: str, action: str, caller: Caller, reason: str | None) -> ApprovalDecision:
        desk = self.app.service.approvals
        if action == "approve":
            return await desk.approve(approval_id, caller, reason or None)
        if not (reason or "").strip():
            raise InvalidInputError("give a reason to reject")
        return await desk.reject(approval_id, caller, reason)

    async def preview(self, request: Request) -> Response:
        if await self.session(request) is None:
            raise HTTPProblem(401, "sign in to see held emails")
        approval = await self.app.service.approvals.get(request.path_params["id"])
        async with self.app.store.transaction() as tx:
            send = await tx.get_send(approval.request_id)
        rendered = try_render(self.app, send, self.now())
        if rendered is None:
            raise HTTPProblem(404, "no preview for this email")
        return HTMLResponse(rendered.html, headers=s.PREVIEW_HEADERS)

    async def css(self, request: Request) -> Response:
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return FileResponse(TEMPLATES / "admin.css", media_type="text/css", headers=headers)
