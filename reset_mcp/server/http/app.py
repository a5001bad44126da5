"""`serve --transport streamable-http|sse`: one Starlette app served by uvicorn.

    /mcp (or /sse + /messages/)   the SDK's MCP app, bearer keys checked by the SDK
    /v1/tokens/*, /v1/approvals*  REST for the app's reset page and the overseer (rest.py)
    /healthz, /metrics            no key; /metrics needs any valid key on a non-loopback bind

The lifespan builds the App and its delivery worker once; the MCP server's own lifespan
(entered by the streamable-HTTP session manager, or per SSE connection) only lends that
App out. At shutdown uvicorn stops accepting, lets open requests finish (up to
`GRACEFUL_SECONDS`), then in-flight deliveries are awaited before the worker stops.

Host and Origin are checked on every route (DNS rebinding): on loopback the SDK's own
defaults (plus RESET_MCP_ALLOWED_HOSTS / _ORIGINS if set); a public bind must name both,
and must have at least one active API key, or the server refuses to start (exit 2).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, Literal
from urllib.parse import urlsplit

import anyio
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from reset_mcp.app import App
from reset_mcp.config import Settings
from reset_mcp.errors import ConfigError
from reset_mcp.server.admin.site import AdminSite
from reset_mcp.server.http.auth import AppHolder, KeyVerifier, ScopedTools
from reset_mcp.server.http.metrics import Metrics
from reset_mcp.server.http.rest import build_routes
from reset_mcp.server.mcp.server import build_server
from reset_mcp.server.serve import app_with_worker

log = logging.getLogger("reset_mcp")
Transport = Literal["streamable-http", "sse"]
GRACEFUL_SECONDS = 10.0
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
    return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)


def base_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.http_host
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{settings.http_port}"


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

    `freeze_heap`: see `app_with_worker`; `serve` sets it, as it owns the process."""
    security = transport_security(settings)
    factory = app_factory or (lambda: app_with_worker(settings, freeze_heap=freeze_heap))
    holder, metrics = AppHolder(), Metrics()
    admin = AdminSite(holder, base_url=base_url(settings), loopback=is_loopback(settings.http_host))

    @asynccontextmanager
    async def lend_app() -> AsyncIterator[App]:
        yield holder.get()

    mcp_path = "/sse" if transport == "sse" else "/mcp"
    server = build_server(
        lend_app,
        token_verifier=KeyVerifier(holder),
        auth=AuthSettings(
            issuer_url=base_url(settings),  # type: ignore[arg-type]
            resource_server_url=base_url(settings) + mcp_path,  # type: ignore[arg-type]
            validate_token_resource=False,  # our keys are not audience-bound; the verifier checks them
        ),
        middleware=[ScopedTools(metrics)],
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
            holder.app = app
            admin.started(app)  # session and link keys; approval links in the notice email
            app.dispatcher.on_delivered = metrics.on_delivered
            metrics.known_tools = frozenset(tool.name for tool in await server.list_tools())
            try:
                # Mounted, the SDK app's own lifespan never runs: its session manager is ours to run.
                async with session_manager.run() if session_manager is not None else nullcontext():
                    yield
            finally:
                await app.dispatcher.wait_idle()  # before the worker is cancelled
                holder.app = None

    routes = build_routes(holder, metrics, metrics_need_key=not is_loopback(settings.http_host))
    return Starlette(
        routes=[*routes, *admin.routes(), Mount("/", app=mcp_app)],
        middleware=[Middleware(HostCheck, security=security)],
        lifespan=lifespan,
    )


async def count_active_keys(settings: Settings) -> int:
    from reset_mcp.store import open_store

    store = await open_store(
        settings.effective_database_url, pool_size=1, pool_timeout=settings.db_pool_timeout_seconds
    )
    try:
        async with store.transaction() as tx:
            return await tx.count_active_api_keys()
    finally:
        await store.aclose()


def serve_http(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    overrides: dict[str, Any] = {}
    if getattr(args, "host", None):
        overrides["http_host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["http_port"] = args.port
    if getattr(args, "stateless", False):
        overrides["stateless_http"] = True
    if getattr(args, "workers", None) is not None:
        overrides["http_workers"] = args.workers
    settings = settings.model_copy(update=overrides)
    transport: Transport = "sse" if getattr(args, "transport", "") == "sse" else "streamable-http"
    if settings.http_workers > 1:
        if transport == "sse":
            print(
                "reset-mcp: --workers needs --transport streamable-http: an SSE session lives in the "
                "process that opened it, and its messages could reach another worker",
                file=sys.stderr,
            )
            return 2
        if not settings.stateless_http:
            # A handshake-era MCP session lives in one process; the next request of the
            # session could reach another worker. Modern-era clients have no sessions.
            log.info("%d workers: streamable HTTP runs stateless", settings.http_workers)
            settings = settings.model_copy(update={"stateless_http": True})
    try:
        # Built here with workers too: building checks the bind (ConfigError); and
        # opening the store below migrates it once, before any worker starts.
        asgi = build_http_app(settings, transport=transport, freeze_heap=True)
        keys = anyio.run(count_active_keys, settings)
    except ConfigError as exc:
        print(f"reset-mcp: {exc}", file=sys.stderr)
        return 2
    hint = "create one with: reset-mcp keys create --scope send --name my-agent"
    if keys == 0 and not is_loopback(settings.http_host):
        print(f"reset-mcp: refusing to bind {settings.http_host} with no active API keys; {hint}", file=sys.stderr)
        return 2
    if keys == 0:
        log.warning("no active API keys: every MCP and REST request will be refused (401); %s", hint)
    if settings.stateless_http and transport == "sse":
        log.warning("--stateless applies to streamable HTTP only; SSE keeps a session per connection")
    options: dict[str, Any] = {
        "host": settings.http_host,
        "port": settings.http_port,
        "loop": "auto",  # uvloop where installed (a dependency except on Windows)
        "http": "auto",  # httptools where installed (a dependency), else h11
        "lifespan": "on",
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        "log_level": settings.log_level.lower(),
        "log_config": None,  # uvicorn's records go through our logging: stderr, our format
        "server_header": False,
    }
    where = f"{base_url(settings)}{'/sse' if transport == 'sse' else '/mcp'}"
    if settings.http_workers > 1:
        from reset_mcp.server.http.workers import serve_workers

        return serve_workers(settings, options, where)
    server = uvicorn.Server(uvicorn.Config(asgi, **options))
    log.info("reset-mcp %s on %s", transport, where)
    server.run()
    return 0 if server.started else 1
