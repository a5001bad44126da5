"""`reset-mcp keys create|list|revoke`: the HTTP API keys, from the command line.

`create` prints the key alone on stdout (so `KEY=$(reset-mcp keys create ...)` works)
and says on stderr that it will not be shown again: only its hash is stored.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

import anyio

from reset_mcp.app import build_app
from reset_mcp.config import Settings
from reset_mcp.store.records import ApiKeyRecord


def run_keys(settings: Settings, args: argparse.Namespace) -> int:
    return anyio.run(_run, settings, args)


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    async with build_app(settings) as app:
        keys = app.service.keys
        if args.action == "create":
            plaintext, record = await keys.create(args.name, args.scope)
            print(plaintext)
            print(
                f"reset-mcp: created key {record.id} ({record.name}) with scopes {', '.join(record.scopes)} "
                f"in the database {app.store.url_for_display}.\n"
                "reset-mcp: store it now: it will not be shown again (only its hash is kept).",
                file=sys.stderr,
            )
            return 0
        if args.action == "list":
            _print_table(await keys.list())
            return 0
        revoked = await keys.revoke(args.id)
        if revoked is None:
            print(f"reset-mcp: no key {args.id!r}", file=sys.stderr)
            return 1
        print(f"reset-mcp: key {args.id} {'revoked' if revoked else 'was already revoked'}", file=sys.stderr)
        return 0


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def _print_table(keys: list[ApiKeyRecord]) -> None:
    if not keys:
        print("no API keys (create one: reset-mcp keys create --scope send --name my-agent)", file=sys.stderr)
        return
    rows = [("ID", "NAME", "SCOPES", "CREATED", "REVOKED")]
    rows += [(k.id, k.name, ",".join(k.scopes), _when(k.created_at), _when(k.revoked_at)) for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
