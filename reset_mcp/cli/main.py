"""`reset-mcp` command line: serve, doctor, schemas, and the overseer's tools.

Every command reads the same RESET_MCP_* settings as the server; options of `serve`
override them, and the resulting Settings object is what the server (and each of its
worker processes) runs with. Logs and notices go to stderr; stdout carries only the
protocol (serve over stdio) or the command's output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from reset_mcp import __version__
from reset_mcp.cli.admin import run_admin
from reset_mcp.cli.doctor import run_doctor
from reset_mcp.cli.keys import run_keys
from reset_mcp.config import MAX_HTTP_WORKERS, Settings, load_settings
from reset_mcp.errors import ResetMCPError
from reset_mcp.logs import configure_logging
from reset_mcp.vocab import Scope


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reset-mcp", description="Password resets for AI agents, over MCP.")
    p.add_argument("--version", action="version", version=f"reset-mcp {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--transport", choices=["stdio", "streamable-http", "sse"], default="stdio")
    serve.add_argument("--host", default=None, help="HTTP bind address (default RESET_MCP_HTTP_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="HTTP port (default RESET_MCP_HTTP_PORT, 8765)")
    serve.add_argument("--stateless", action="store_true", help="stateless streamable HTTP (load balancers)")
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=None,
        help="streamable HTTP worker processes on one port, sharing the database (default RESET_MCP_HTTP_WORKERS, 1)",
    )

    sub.add_parser("doctor", help="show the effective configuration and what is wrong")
    sub.add_parser("migrate", help="apply database migrations")

    schemas = sub.add_parser("schemas", help="write tool_schemas/<tool>.json from the live server")
    schemas.add_argument("--out", default="tool_schemas")
    schemas.add_argument("--check", action="store_true", help="fail if the files differ")

    appr = sub.add_parser("approvals", help="list, approve or reject held emails")
    asub = appr.add_subparsers(dest="action", required=True)
    al = asub.add_parser("list")
    al.add_argument("--all", action="store_true", help="include decided approvals")
    aa = asub.add_parser("approve")
    aa.add_argument("id")
    aa.add_argument("--reason", default=None)
    ar = asub.add_parser("reject")
    ar.add_argument("id")
    ar.add_argument("--reason", required=True)

    audit = sub.add_parser("audit", help="verify or show the audit log")
    ausub = audit.add_subparsers(dest="action", required=True)
    ausub.add_parser("verify")
    tail = ausub.add_parser("tail")
    tail.add_argument("-n", type=int, default=20)

    outbox = sub.add_parser("outbox", help="delivery queue: counts, list, show, retry")
    osub = outbox.add_subparsers(dest="action", required=True)
    osub.add_parser("counts")
    ol = osub.add_parser("list")
    ol.add_argument("--status", default=None)
    ol.add_argument("-n", type=int, default=50)
    os_ = osub.add_parser("show")
    os_.add_argument("id")
    ort = osub.add_parser("retry")
    ort.add_argument("id")

    keys = sub.add_parser("keys", help="HTTP API keys")
    ksub = keys.add_subparsers(dest="action", required=True)
    kc = ksub.add_parser("create")
    kc.add_argument("--scope", action="append", required=True, choices=list(Scope))
    kc.add_argument("--name", required=True)
    ksub.add_parser("list")
    kr = ksub.add_parser("revoke")
    kr.add_argument("id")

    prev = sub.add_parser("preview", help="render an email with sample data")
    prev.add_argument("kind")
    prev.add_argument("--locale", default=None)
    prev.add_argument("--out", default=None, help="write FILE.html and FILE.txt (default: print)")

    purge = sub.add_parser("purge", help="delete what ended long ago: tokens, events, outbox rows, requests")
    purge.add_argument("--days", type=int, default=None, help="default: RESET_MCP_RETENTION_DAYS, or 90")
    return p


def _worker_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= count <= MAX_HTTP_WORKERS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_HTTP_WORKERS}, got {count}")
    return count


def serve_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with `serve`'s command-line options laid over them."""
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["http_host"] = args.host
    if args.port is not None:
        overrides["http_port"] = args.port
    if args.stateless:
        overrides["stateless_http"] = True
    if args.workers is not None:
        overrides["http_workers"] = args.workers
    return settings.model_copy(update=overrides)


def _server_command(settings: Settings, args: argparse.Namespace) -> int:
    # Imported here, not at the top: the MCP SDK, Starlette and uvicorn take a third of a
    # second to import, which every other command (`keys list`, `approvals`) would pay.
    from reset_mcp.server.mcp.schemas import write_schemas
    from reset_mcp.server.serve import serve

    if args.command == "serve":
        return serve(serve_settings(settings, args), args.transport)
    return write_schemas(settings, args.out, check=args.check)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ResetMCPError as exc:
        print(f"reset-mcp: {exc}", file=sys.stderr)
        if args.command != "doctor":
            return 2
        settings = None
    configure_logging(settings.log_level if settings else "INFO")
    try:
        if args.command == "doctor":
            return run_doctor(settings)
        assert settings is not None
        if args.command in ("serve", "schemas"):
            return _server_command(settings, args)
        if args.command == "keys":
            return run_keys(settings, args)
        return run_admin(settings, args)
    except ResetMCPError as exc:
        print(f"reset-mcp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
