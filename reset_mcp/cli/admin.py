"""The overseer's commands: approvals, audit, outbox, migrate, preview, purge.

They work on the same database as the server (SQLite in WAL mode takes a CLI writer
beside a running server). Deciding an approval needs an API key with the `approve`
scope (`--key` or RESET_MCP_APPROVE_KEY): the CLI decides as that key, and records its
name, so the credentials that requested a send can never approve it, whoever holds a
shell on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio

from reset_mcp.app import App, build_app, composer_for, render_env
from reset_mcp.config import Settings
from reset_mcp.deps import Caller
from reset_mcp.emails.outgoing import render_sample
from reset_mcp.emails.registry import EmailKinds
from reset_mcp.flows.retention import purge
from reset_mcp.policy.abuse import HISTORY_DAYS
from reset_mcp.store import open_store
from reset_mcp.vocab import ApprovalStatus, OutboxStatus, Scope

APPROVE_KEY_VAR = "RESET_MCP_APPROVE_KEY"
NO_KEY = (
    f"deciding an approval needs an API key with the approve scope: --key rmcp_... or {APPROVE_KEY_VAR} "
    "(create one with: reset-mcp keys create --scope approve --name <your name>)"
)


class Refused(Exception):
    """The command cannot go on; exit code 2 with the message on stderr."""


async def _approver(app: App, presented: str | None) -> Caller:
    """The caller an approve key names; `Refused` without one, or with any other key.

    A shell is no credential: an agent with a shell (Claude Code over stdio) could run
    this command too. The key's own name is recorded as the decider."""
    presented = (presented or os.environ.get(APPROVE_KEY_VAR) or "").strip()
    if not presented:
        raise Refused(NO_KEY)
    record = await app.service.keys.authenticate(presented)
    if record is None:
        raise Refused("that key is not valid: mistyped, revoked, or not a reset-mcp key")
    if Scope.APPROVE not in record.scopes:
        raise Refused("this key lacks the 'approve' scope; use an overseer's key")
    return Caller(f"key:{record.id}", frozenset(record.scopes), name=record.name)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _run(settings: Settings, fn: Callable[[App], Awaitable[int]]) -> int:
    async def main() -> int:
        async with build_app(settings) as app:
            return await fn(app)

    return anyio.run(main)


async def _approvals(app: App, args: argparse.Namespace) -> int:
    desk = app.service.approvals
    if args.action == "list":
        items = await desk.list(None if args.all else ApprovalStatus.PENDING, 200)
        if not items:
            print("no pending approvals" if not args.all else "no approvals")
        for a in items:
            print(f"{a.id}  {a.status:<9} {a.kind:<16} {a.recipient}  expires {_when(a.expires_at)}")
            print(f"    {a.summary}")
            print(f"    held because: {a.reason}")
            if a.given is not None and (given := a.given.model_dump(exclude_none=True)):
                # What the requester wrote, quoted and apart from our words: data, not instructions.
                quoted = ", ".join(f"{key} “{value}”" for key, value in given.items())
                print(f"    given by the requester (data): {quoted}")
        return 0
    try:
        caller = await _approver(app, getattr(args, "key", None))
    except Refused as exc:
        print(f"reset-mcp: {exc}", file=sys.stderr)
        return 2
    if args.action == "approve":
        result = await desk.approve(args.id, caller, args.reason)
    else:
        result = await desk.reject(args.id, caller, args.reason)
    delivery = f", delivery {result.delivery.status}" if result.delivery else ""
    print(f"{result.approval_id}: {result.status} (request {result.request_id}{delivery})")
    return 0


async def _audit(app: App, args: argparse.Namespace) -> int:
    admin = app.service.admin
    if args.action == "tail":
        for e in await admin.audit_tail(args.n):
            print(f"{e.seq:>6}  {_when(e.at)}  {e.actor:<20} {e.action:<18} {e.subject}  {json.dumps(e.detail)}")
        return 0
    anchor = app.settings.audit_anchor_file
    report = await admin.verify_audit(anchor)
    if report.ok:
        keyed = f", {report.keyed} keyed entries checked with the key ring" if report.keyed else ""
        anchored = f", heads recorded in {anchor} all present" if anchor is not None else ""
        print(f"audit log intact: {report.checked} entries, hash chain verified{keyed}{anchored}")
        if report.unchecked_through:
            print(
                f"warning: entries 1 to {report.unchecked_through} are keyed under a secret no longer in the "
                "ring: their links hold, their contents could not be checked",
                file=sys.stderr,
            )
        return 0
    if report.bad_seq is None:
        print(f"audit log NOT VERIFIED: {report.problem}", file=sys.stderr)
    else:
        print(f"audit log BROKEN at entry {report.bad_seq}: {report.problem}", file=sys.stderr)
    return 1


_SHOWN = ("id", "send_id", "kind", "recipient", "status", "attempts", "message_id", "last_error", "provider_message_id")


async def _outbox(app: App, args: argparse.Namespace) -> int:
    admin = app.service.admin
    if args.action == "counts":
        counts = await admin.outbox_counts()
        for status in OutboxStatus:
            print(f"{status:<10} {counts.get(status, 0)}")
        return 0
    if args.action == "list":
        for r in await admin.outbox_list(args.status, args.n):
            err = f"  ({r.last_error})" if r.last_error else ""
            print(f"{r.id}  {r.status:<9} {r.kind:<16} {r.recipient}  attempts {r.attempts}{err}")
        return 0
    row = await admin.outbox_row(args.id)
    if args.action == "show":
        shown = {k: getattr(row, k) for k in _SHOWN}
        shown |= {
            "created_at": _when(row.created_at),
            "next_attempt_at": _when(row.next_attempt_at),
            "sent_at": _when(row.sent_at),
            "not_after": _when(row.not_after),
        }
        print(json.dumps(shown, indent=2))
        return 0
    if not await admin.outbox_retry(row.id):
        print(f"{row.id} is {row.status}; only failed or pending rows can be retried", file=sys.stderr)
        return 1
    print(f"{row.id} queued for delivery")
    await app.jobs.run_once()
    return 0


def _migrate(settings: Settings) -> int:
    async def main() -> list[str]:
        store = await open_store(settings.effective_database_url, pool_size=1, migrate=False)
        try:
            return await store.migrate()
        finally:
            await store.aclose()

    applied = anyio.run(main)
    print("\n".join(f"applied {m}" for m in applied) or "schema is up to date")
    return 0


async def _purge(app: App, args: argparse.Namespace) -> int:
    # Default: the server's retention, or (retention off) the history abuse detection reads.
    days = args.days if args.days is not None else (app.settings.retention_days or HISTORY_DAYS)
    if days < 1:
        print("reset-mcp: --days must be at least 1", file=sys.stderr)
        return 2
    counts = await purge(app.store, app.clock.now() - timedelta(days=days))
    print(", ".join(f"{n} {table}" for table, n in counts.items()) + f" deleted (older than {days} days)")
    return 0


def _preview(settings: Settings, args: argparse.Namespace) -> int:
    rendered = render_sample(EmailKinds(), render_env(settings, composer_for(settings)), args.kind, locale=args.locale)
    if args.out is None:
        print(f"Subject: {rendered.subject}\n\n{rendered.text}")
        return 0
    base = Path(args.out)
    stem = (base.with_suffix("") if base.suffix in (".html", ".txt") else base).resolve()
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".html").write_text(rendered.html, encoding="utf-8")
        stem.with_suffix(".txt").write_text(f"Subject: {rendered.subject}\n\n{rendered.text}", encoding="utf-8")
    except OSError as exc:
        print(f"reset-mcp: cannot write {stem.with_suffix('.html')}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {stem.with_suffix('.html')} and {stem.with_suffix('.txt')}")
    return 0


def run_admin(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "preview":
        return _preview(settings, args)
    if args.command == "migrate":
        return _migrate(settings)
    handlers = {"approvals": _approvals, "audit": _audit, "outbox": _outbox, "purge": _purge}
    handler = handlers[args.command]
    return _run(settings, lambda app: handler(app, args))
