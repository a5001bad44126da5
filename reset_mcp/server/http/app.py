"""The HTTP server as one Starlette app, served by uvicorn (`server/serve.py` runs it).

    /mcp (or /sse + /messages/)   the SDK's MCP app, bearer keys checked by the SDK
    /v1/tokens/*, /v1/approvals*  REST for the app's reset page and the overseer (rest.py)
    /admin*                       the approvals page (server/admin/)
    /healthz, /metrics            no key; /metrics needs any valid key on a non-loopback bind

The lifespan builds the App and its job runner once and lends it to every route; the MCP
server's own lifespan (entered by the streamable-HTTP session manager, or per SSE
connection) only borrows it. A domain error raised by a route is answered by the one
mapping in `errors.refusal`: JSON for REST, a page for /admin.

Host and Origin are checked on every route (DNS rebinding): on loopback the SDK's own
defaults (plus RESET_MCP_ALLOWED_HOSTS / _ORIGINS if set); a public bind must name both.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, Literal
from urllib.parse import urlsplit

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from reset_mcp.app import App, app_with_jobs
from reset_mcp.config import Settings
from reset_mcp.data_dir import load_or_create_secret
from reset_mcp.errors import ConfigError, ResetMCPError, refusal
from reset_mcp.server.admin.session import redact_access_log
from reset_mcp.server.admin.site import AdminSite
from reset_mcp.server.http.auth import AppHolder, CheckedVerifier, HTTPProblem, KeyAuth, KeyCheck, KeyVerifier
from reset_mcp.server.http.guard import WholeBody
from reset_mcp.server.http.oauth_wiring import mcp_auth
from reset_mcp.server.http.rest import build_routes
from reset_mcp.server.mcp.server import build_server, state_key_of

log = logging.getLogger(__name__)
Transport = Literal["streamable-http", "sse"]
# The SDK's defaults for a loopback bind (what it would apply itself for 127.0.0.1).
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
UNCHECKED_PATHS = frozenset({"/healthz"})  # load balancers probe by instance address


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def transport_security(settings: Settings) -> TransportSecuritySettings:
    hosts, origins = _split(settings.allowed_hosts), _split(settings.allowed_origins)
    if settings.public_url:
        # The admin page's own forms post from the public origin; it is always allowed.
        parts = urlsplit(settings.public_url)
        origins = [*origins, f"{parts.scheme}://{parts.netloc}"]
    if is_loopback(settings.http_host):
        return TransportSecuritySettings(
            allowed_hosts=[*LOOPBACK_HOSTS, *hosts], allowed_origins=[*LOOPBACK_ORIGINS, *origins]
        )
    if not hosts or not origins:
        raise ConfigError(
            f"binding {settings.http_host} (not loopback) needs RESET_MCP_ALLOWED_HOSTS (Host values, e.g. "
            "reset.example.com or reset.example.com:* for any port) and RESET_MCP_ALLOWED_ORIGINS "
            "(e.g. https://app.example.com): they guard against DNS rebinding"
        )
    if not settings.has_directory and not settings.trust_caller_recipient:
        raise ConfigError(
            f"binding {settings.http_host} (not loopback) without an account directory lets any key holder "
            "choose where reset links go: set RESET_MCP_DIRECTORY_URL or RESET_MCP_DIRECTORY_SQL, or "
            "RESET_MCP_TRUST_CALLER_RECIPIENT=true if every caller is trusted to name the recipient"
        )
    return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)


class HostCheck:
    """The SDK's Host/Origin check (421 / 403), applied to our routes as well as to MCP."""

    def __init__(self, app: ASGIApp, security: TransportSecuritySettings) -> None:
        self.app = app
        self.check = TransportSecurityMiddleware(security)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in UNCHECKED_PATHS:
            refused = await self.check.validate_request(Request(scope), is_post=False)
            if refused is not None:
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_http_app(
    settings: Settings,
    *,
    app_factory: Callable[[], AbstractAsyncContextManager[App]] | None = None,
    transport: Transport = "streamable-http",
    freeze_heap: bool = False,
) -> Starlette:
    """The whole HTTP server as one ASGI app; raises ConfigError for an unsafe public bind.

    `freeze_heap`: see `app.app_with_jobs`; `serve` sets it, as it owns the process."""
    security = transport_security(settings)
    redact_access_log(logging.getLogger("uvicorn.access"))  # approval links' signatures
    factory = app_factory or (
        lambda: app_with_jobs(settings, freeze_heap=freeze_heap, approval_links=True, metrics=True)
    )
    holder = AppHolder()
    base = settings.public_base_url
    admin = AdminSite(holder, base_url=base, loopback=is_loopback(settings.http_host))

    @asynccontextmanager
    async def lend_app() -> AsyncIterator[App]:
        yield holder.get()

    mcp_path = "/sse" if transport == "sse" else "/mcp"
    # Keys only, or keys plus an OAuth issuer's access tokens: one verifier for MCP and REST.
    auth = mcp_auth(settings, KeyVerifier(holder), mcp_path)
    server = build_server(
        lend_app,
        count_calls=lambda: holder.get().metrics,  # None: an embedding app's factory asked for none
        directory=settings.has_directory,
        state_key=state_key_of(load_or_create_secret(settings)),
        tracing=settings.tracing,
        token_verifier=CheckedVerifier(auth.verifier),  # KeyCheck's answer for the request, if any
        auth=auth.settings,
    )
    session_manager: Any = None
    if transport == "sse":
        mcp_app = server.sse_app(transport_security=security, host=settings.http_host)
    else:
        mcp_app = server.streamable_http_app(
            streamable_http_path=mcp_path,
            stateless_http=settings.stateless_http,
            json_response=settings.stateless_http,
            transport_security=security,
            host=settings.http_host,
        )
        session_manager = server.session_manager

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with factory() as app:
            with holder.lend(app):
                try:
                    # Mounted, the SDK app's own lifespan never runs: its session manager is ours to run.
                    async with session_manager.run() if session_manager is not None else nullcontext():
                        yield
                finally:
                    await app.dispatcher.wait_idle()  # before the job runner stops
                    await auth.aclose()  # the issuer's HTTP client, if any

    async def problem(request: Request, exc: Exception) -> Response:
        """The one place a route's error becomes an answer: a page under /admin, JSON elsewhere."""
        if isinstance(exc, HTTPProblem):
            status, message, headers = exc.status, exc.message, exc.headers
        else:
            assert isinstance(exc, ResetMCPError)
            answer = refusal(exc)
            status, message, headers = answer.status, answer.message, answer.headers
        if request.url.path.startswith("/admin"):
            return admin.problem_page(request, status, message, headers)
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    async def gone(request: Request, exc: Exception) -> Response:
        """The client left (or its body deadline closed the connection) mid-body: nobody to
        answer, nothing to log as a server error (http/guard.py)."""
        return Response(status_code=400)

    routes = build_routes(holder, KeyAuth(auth.verifier), metrics_need_key=not is_loopback(settings.http_host))
    return Starlette(
        # The RFC 9728 metadata first: it wins over the SDK's own copy inside the MCP app.
        routes=[
            *auth.routes,
            *routes,
            *admin.routes(),
            Mount("/", app=KeyCheck(WholeBody(mcp_app), auth.verifier, holder)),
        ],
        middleware=[Middleware(HostCheck, security=security)],
        exception_handlers={HTTPProblem: problem, ResetMCPError: problem, ClientDisconnect: gone},
        lifespan=lifespan,
    )
