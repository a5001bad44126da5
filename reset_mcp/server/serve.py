"""`reset-mcp serve`: the one entry point for every transport.

    stdio              the MCP server on this process's stdin/stdout (what desktop hosts start)
    streamable-http    one uvicorn server, or `--workers N` processes on one port (http/workers.py)
    sse                the older HTTP transport, one process

Every path runs the same App with its job runner (`app.app_with_jobs`); the caller hands
in the Settings it resolved (environment, then command-line options), and that object,
not the environment, is what each worker process receives.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import anyio
import uvicorn

from reset_mcp.app import app_with_jobs
from reset_mcp.config import Settings
from reset_mcp.data_dir import ensure_data_dir
from reset_mcp.errors import ConfigError
from reset_mcp.flows.keys import count_active_keys
from reset_mcp.logs import install_redaction
from reset_mcp.server.http.app import build_http_app, is_loopback
from reset_mcp.server.http.guard import GuardedConfig, limits_for
from reset_mcp.server.http.workers import serve_workers
from reset_mcp.server.mcp.server import build_server
from reset_mcp.server.stdio import announce_when_started, serve_stdio
from reset_mcp.store import open_store

log = logging.getLogger("reset_mcp")
Transport = Literal["stdio", "streamable-http", "sse"]
GRACEFUL_SECONDS = 10.0  # uvicorn lets open requests finish this long at shutdown
KEEP_ALIVE_SECONDS = 5.0  # an idle kept-alive connection is closed after this (uvicorn's default, said aloud)
NO_KEY_HINT = "create one with: reset-mcp keys create --scope send --name my-agent"


def loop_options() -> dict[str, bool]:
    """uvloop where it is installed (a dependency except on Windows): less CPU a call."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def serve(settings: Settings, transport: Transport = "stdio") -> int:
    """Run the server until it is stopped; the process's exit code."""
    install_redaction()  # no log line carries a token (logs.py); the CLI has done it already
    if transport == "stdio":
        ensure_data_dir(settings)  # a one-line ConfigError before any transport starts
        factory = announce_when_started(lambda: app_with_jobs(settings, freeze_heap=True))
        serve_stdio(build_server(factory, directory=settings.has_directory, tracing=settings.tracing), loop_options())
        return 0
    return _serve_http(settings, transport)


async def _active_keys(settings: Settings) -> int:
    # Also migrates the database, once, before any worker process opens it.
    store = await open_store(
        settings.effective_database_url, pool_size=1, pool_timeout=settings.db_pool_timeout_seconds
    )
    try:
        return await count_active_keys(store)
    finally:
        await store.aclose()


def _serve_http(settings: Settings, transport: Literal["streamable-http", "sse"]) -> int:
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
        ensure_data_dir(settings)  # before the store opens it: a one-line error naming the folder
        # Built here with workers too: building checks the bind (ConfigError).
        asgi = build_http_app(settings, transport=transport, freeze_heap=True)
        keys = anyio.run(_active_keys, settings)
    except ConfigError as exc:
        print(f"reset-mcp: {exc}", file=sys.stderr)
        return 2
    if keys == 0 and not is_loopback(settings.http_host):
        print(
            f"reset-mcp: refusing to bind {settings.http_host} with no active API keys; {NO_KEY_HINT}", file=sys.stderr
        )
        return 2
    if keys == 0:
        log.warning("no active API keys: every MCP and REST request will be refused (401); %s", NO_KEY_HINT)
    if settings.stateless_http and transport == "sse":
        log.warning("--stateless applies to streamable HTTP only; SSE keeps a session per connection")
    options: dict[str, Any] = {
        "host": settings.http_host,
        "port": settings.http_port,
        "loop": "auto",  # uvloop where installed (a dependency except on Windows)
        "http": "auto",  # httptools where installed (a dependency), else h11
        "lifespan": "on",
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        # Not `limit_concurrency`: it counts idle connections too, so a flood of idle
        # sockets would turn every request into a 503. The cap and the read deadlines
        # are the guarded protocol's (http/guard.py).
        "log_level": settings.log_level.lower(),
        "log_config": None,  # uvicorn's records go through our logging: stderr, our format
        "server_header": False,
    }
    if settings.http_workers > 1:
        return serve_workers(settings, options)
    server = uvicorn.Server(GuardedConfig(asgi, limits=limits_for(settings), **options))
    log.info("reset-mcp %s on %s%s", transport, settings.public_base_url, "/sse" if transport == "sse" else "/mcp")
    server.run()
    return 0 if server.started else 1
