"""What every admin page shares: the running App, templates, the session, CSRF-checked forms.

The approvals page (`site.py`) and the pages behind the approval links in the notice
email (`email_links.py`) both build on `Pages`. Session and CSRF keys are derived from the
server secret (`session.py`); signed approval links come from the App (`links.py`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from reset_mcp.app import App
from reset_mcp.deps import Caller
from reset_mcp.errors import InvalidInputError
from reset_mcp.models import ApprovalDecision
from reset_mcp.server.admin import session as s
from reset_mcp.server.http.auth import AppHolder, HTTPProblem
from reset_mcp.store.records import ApiKeyRecord
from reset_mcp.vocab import Scope

TEMPLATES = Path(__file__).parent / "templates"


class Pages:
    def __init__(self, holder: AppHolder, *, base_url: str, loopback: bool) -> None:
        # Cookies are Secure unless the browser reaches us over plain http on loopback.
        self.holder, self.base_url = holder, base_url.rstrip("/")
        self.secure = not loopback or self.base_url.startswith("https://")
        self.own_origin = s.origin_of(self.base_url)  # a POST must come from here (or the Host it used)
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)
        self._codec: tuple[App, s.SessionCodec] | None = None

    @property
    def app(self) -> App:
        return self.holder.get()

    @property
    def codec(self) -> s.SessionCodec:
        """Session and CSRF keys of the running App (derived once per App from its secret)."""
        app = self.app
        if self._codec is None or self._codec[0] is not app:
            self._codec = (app, s.SessionCodec(app.secret))
        return self._codec[1]

    def now(self) -> datetime:
        return self.app.clock.now()

    def page(self, request: Request, name: str, status: int = 200, binding: str | None = None, **ctx: Any) -> Response:
        """A page; forms on it get a CSRF token bound to `binding` (the session), else to a form cookie."""
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

    def problem_page(self, request: Request, status: int, message: str, headers: dict[str, str]) -> Response:
        """An error from any admin route, as a page (the HTTP app's exception handler calls this)."""
        title = "Unavailable" if status == 503 else "Refused"
        response = self.message(request, status, title, message)
        response.headers.update(headers)
        return response

    async def session(self, request: Request) -> tuple[s.Session, ApiKeyRecord] | None:
        """The signed-in key, re-read on every request with the session's row: a signed-out
        session and a revoked key's sessions end at once, on every instance."""
        session = self.codec.read(request.cookies.get(s.SESSION_COOKIE), self.now())
        if session is None:
            return None
        record = await self.app.service.admin.session_key(session.id)
        if record is None or record.id != session.key_id:
            return None
        if record.revoked_at is not None or Scope.APPROVE not in record.scopes:
            return None
        return session, record

    async def post_form(self, request: Request, binding: str | None) -> dict[str, str]:
        """Origin first, then the CSRF token (constant-time): 403 for either."""
        s.check_origin(request, self.own_origin)
        form = await s.read_form(request)
        if not self.codec.csrf_ok(binding, form.get("csrf")):
            raise HTTPProblem(403, "the form's security token is missing or stale; reload the page and try again")
        return form

    def signin_page(
        self, request: Request, status: int = 200, error: str | None = None, next_page: str | None = None
    ) -> Response:
        response = self.page(request, "signin.html.j2", status, error=error, next=next_page)
        if request.cookies.get(s.SESSION_COOKIE):
            s.clear_cookie(response, s.SESSION_COOKIE, secure=self.secure)
        return response

    async def decide_as(self, approval_id: str, action: str, caller: Caller, reason: str | None) -> ApprovalDecision:
        desk = self.app.service.approvals
        if action == "approve":
            return await desk.approve(approval_id, caller, reason or None)
        if not (reason or "").strip():
            raise InvalidInputError("give a reason to reject")
        return await desk.reject(approval_id, caller, reason)
