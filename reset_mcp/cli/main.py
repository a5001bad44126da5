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
from reset_mcp.emails.registry import BUILTIN_NAMES
from reset_mcp.errors import ResetMCPError
from reset_mcp.logs import configure_logging
from reset_mcp.vocab import OutboxStatus, Scope


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reset-mcp",
        description="Password resets for AI agents, over MCP. Every command reads the RESET_MCP_* settings.",
        epilog="`reset-mcp COMMAND --help` describes a command. `reset-mcp doctor` shows the settings in effect.",
    )
    p.add_argument("--version", action="version", version=f"reset-mcp {__version__}", help="print the version")
    sub = p.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)", description=SERVE_TEXT)
    serve.add_argument(
        "--transport",
        choices=["stdio", "streamable-http", "sse"],
        default="stdio",
        help="stdio for a desktop host (default), streamable-http for remote clients, sse for older ones",
    )
    serve.add_argument("--host", default=None, help="HTTP bind address (default RESET_MCP_HTTP_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="HTTP port (default RESET_MCP_HTTP_PORT, 8765)")
    serve.add_argument("--stateless", action="store_true", help="stateless streamable HTTP (load balancers)")
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default=None,
        help="streamable HTTP worker processes on one port, sharing the database (default RESET_MCP_HTTP_WORKERS, 1)",
    )

    doctor = sub.add_parser(
        "doctor",
        help="show the effective configuration and what is wrong",
        description="Print the settings in effect (secrets masked), the data folder, the oversight policy, "
        "and every problem found. Exit code 1 when something is wrong.",
    )
    doctor.add_argument(
        "--probe",
        action="store_true",
        help="also connect to the email backend, the database, the OAuth issuer and the account directory "
        "(sends nothing)",
    )
    doctor.add_argument(
        "--probe-account",
        metavar="ACCOUNT",
        default=None,
        help="with --probe: an account (email or user id) the account directory must find",
    )
    sub.add_parser("migrate", help="apply database migrations", description="Bring the database schema up to date.")

    schemas = sub.add_parser(
        "schemas",
        help="print each tool's JSON schema document, or write them to a folder",
        description="Without --out, print every tool's document (name, input and output schema, annotations) "
        "as one JSON object; nothing is written.",
    )
    schemas.add_argument("--out", default=None, metavar="FOLDER", help="write FOLDER/<tool>.json (and remove stale)")
    schemas.add_argument("--check", action="store_true", help="with --out: exit 1 if the files differ, write nothing")

    appr = sub.add_parser("approvals", help="list, approve or reject held emails", description=APPROVALS_TEXT)
    asub = appr.add_subparsers(dest="action", required=True, title="actions", metavar="ACTION")
    al = asub.add_parser("list", help="held emails waiting for a decision")
    al.add_argument("--all", action="store_true", help="include decided approvals")
    key_help = "an API key with the approve scope (default RESET_MCP_APPROVE_KEY); its name is recorded"
    aa = asub.add_parser("approve", help="release a held email (you decide as your approve key)")
    aa.add_argument("id", help="the approval id (apr_...)")
    aa.add_argument("--reason", default=None, help="why, for the audit log")
    aa.add_argument("--key", default=None, help=key_help)
    ar = asub.add_parser("reject", help="refuse a held email; it is never sent")
    ar.add_argument("id", help="the approval id (apr_...)")
    ar.add_argument("--reason", required=True, help="why, for the audit log (required)")
    ar.add_argument("--key", default=None, help=key_help)

    audit = sub.add_parser("audit", help="verify or show the audit log")
    ausub = audit.add_subparsers(dest="action", required=True, title="actions", metavar="ACTION")
    ausub.add_parser("verify", help="check the hash chain of the whole log")
    tail = ausub.add_parser("tail", help="show the latest entries")
    tail.add_argument("-n", type=int, default=20, help="how many entries (default 20)")

    outbox = sub.add_parser("outbox", help="delivery queue: counts, list, show, retry")
    osub = outbox.add_subparsers(dest="action", required=True, title="actions", metavar="ACTION")
    osub.add_parser("counts", help="rows by status")
    ol = osub.add_parser("list", help="the latest rows")
    ol.add_argument("--status", default=None, choices=list(OutboxStatus), help="only rows with this status")
    ol.add_argument("-n", type=int, default=50, help="how many rows (default 50)")
    os_ = osub.add_parser("show", help="one row's delivery facts")
    os_.add_argument("id", help="the outbox row id")
    ort = osub.add_parser("retry", help="deliver a failed or pending row again now")
    ort.add_argument("id", help="the outbox row id")

    keys = sub.add_parser("keys", help="HTTP API keys", description=KEYS_TEXT)
    ksub = keys.add_subparsers(dest="action", required=True, title="actions", metavar="ACTION")
    kc = ksub.add_parser("create", help="make a key; it is printed once, only its hash is kept")
    kc.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=list(Scope),
        help="send (agents), redeem (your reset page), approve (overseers); repeat for several",
    )
    kc.add_argument("--name", required=True, help="who holds it, shown on the admin page and in the audit log")
    ksub.add_parser("list", help="every key: id, name, scopes, created, revoked")
    kr = ksub.add_parser("revoke", help="refuse a key from now on")
    kr.add_argument("id", help="the key id (from keys list)")

    prev = sub.add_parser(
        "preview",
        help="render an email with sample data",
        description="Render an email as it would be sent, with sample data and the configured reset URL "
        "(the token is a placeholder: nothing is minted or sent).",
    )
    prev.add_argument("kind", choices=BUILTIN_NAMES, metavar="KIND", help="which email: " + ", ".join(BUILTIN_NAMES))
    prev.add_argument("--locale", default=None, help="BCP 47 language tag, e.g. de (default: English)")
    prev.add_argument("--out", default=None, metavar="FILE", help="write FILE.html and FILE.txt (default: print)")

    purge = sub.add_parser("purge", help="delete what ended long ago: tokens, events, outbox rows, requests")
    purge.add_argument("--days", type=int, default=None, help="default: RESET_MCP_RETENTION_DAYS, or 90")
    return p


SERVE_TEXT = (
    "Run the MCP server. On stdio a desktop host (Claude Desktop, Claude Code) starts it; in a terminal "
    "it waits for a client until Ctrl-C. Over HTTP every request needs an API key (reset-mcp keys create)."
)
APPROVALS_TEXT = (
    "Held emails: the oversight policy waits for a human's decision on these. Deciding needs an API key "
    "with the approve scope (--key or RESET_MCP_APPROVE_KEY): a shell on this machine is no credential."
)
KEYS_TEXT = (
    "Bearer keys for the HTTP transports and REST routes. They live in the database of the data "
    "folder (RESET_MCP_DATA_DIR), which serve uses too."
)


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
    return write_schemas(args.out, check=args.check)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "schemas" and args.check and args.out is None:
        parser.error("schemas --check needs --out FOLDER (the folder to compare)")
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
            return run_doctor(settings, probe=args.probe or args.probe_account is not None, account=args.probe_account)
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
