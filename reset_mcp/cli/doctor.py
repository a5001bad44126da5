"""`reset-mcp doctor`: the effective configuration, secrets masked, and what is wrong.

It checks what start-up would check (settings, data folder, policy file, templates,
database, email backend) and reports every problem it finds instead of stopping at the
first. `--probe` also connects to the email backend, the database, the OAuth issuer and the
account directory (probes.py). Exit code 0 when nothing is wrong, 1 otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from pydantic import SecretStr

from reset_mcp.app import composer_for
from reset_mcp.cli.probes import run_probes
from reset_mcp.config import NO_DIRECTORY_WARNING, Settings
from reset_mcp.context import GeoLocator
from reset_mcp.data_dir import SECRET_FILE, ensure_data_dir
from reset_mcp.directory import open_directory_of
from reset_mcp.emails.registry import EmailKinds
from reset_mcp.errors import ResetMCPError
from reset_mcp.mail import open_email_backend
from reset_mcp.policy.oversight import load_policy
from reset_mcp.store import open_store
from reset_mcp.store.urls import hide_url_secrets, url_for_display
from reset_mcp.vocab import Mode

SECRET_FIELDS = {
    "secret", "secret_fallbacks", "smtp_password", "email_api_key", "webhook_secret", "webhook_bearer",
    "directory_secret", "directory_database_url",
}  # fmt: skip


def mask(name: str, value: Any) -> str:
    """A setting as printed: secrets as "(set)", a URL without its password (userinfo or query)."""
    if value is None:
        return "(not set)"
    if isinstance(value, SecretStr) or name in SECRET_FIELDS:
        return "******** (set)"
    return url_for_display(value) if isinstance(value, str) and "://" in value else str(value)


def _hide(text: str, settings: Settings) -> str:
    """A problem's text without any URL credential (a driver's message may quote its URL)."""
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, str) and "://" in value:
            text = hide_url_secrets(text, value)
    return hide_url_secrets(text, settings.effective_database_url)


def _checks(
    settings: Settings, probe: bool, account: str | None = None
) -> tuple[list[str], list[str], dict[str, Any], list[str]]:
    problems: list[str] = []
    warnings: list[str] = []
    policy_view: dict[str, Any] = {}
    # What cannot be checked when the data folder cannot be written: the outbox, a SQLite file.
    unusable: set[str] = set()
    try:
        ensure_data_dir(settings)
    except ResetMCPError as exc:
        problems.append(str(exc))
        unusable.update({"email backend"} if settings.email_backend == "outbox" else set())
        unusable.update({"database"} if settings.database_url is None else set())
    try:
        policy = load_policy(settings.oversight_mode, settings.policy_file, EmailKinds().gated, settings.canon)
        policy_view = policy.describe()
        modes = set(policy_view["modes"].values())
        if modes & {Mode.GATED, Mode.CONFIRM} and not settings.oversight_email:
            warnings.append(
                "held emails wait for approval, but RESET_MCP_OVERSIGHT_EMAIL is not set: "
                "use `reset-mcp approvals` or the admin HTTP endpoints to decide them"
            )
        if Mode.MONITORED in modes and not settings.oversight_email:
            problems.append("mode monitored needs RESET_MCP_OVERSIGHT_EMAIL to notify the overseer")
    except ResetMCPError as exc:
        problems.append(str(exc))
    for label, build in (
        ("templates", lambda: composer_for(settings)),
        ("GeoIP database", lambda: GeoLocator(settings.geoip_db).close()),
        ("email backend", lambda: open_email_backend(settings.mail_options())),
        ("secret fallbacks", lambda: settings.fallback_secrets),
    ):
        if label in unusable:
            continue
        try:
            build()
        except ResetMCPError as exc:
            problems.append(f"{label}: {exc}")
    if settings.secret is None:
        key = Path(settings.data_dir) / SECRET_FILE
        warnings.append(
            f"RESET_MCP_SECRET is not set: the key in {key} is used "
            f"({'exists' if key.exists() else 'will be generated at start'}); "
            "set RESET_MCP_SECRET to share one key between instances"
        )
    if settings.email_backend == "smtp" and settings.delivery_lease_seconds <= 2 * settings.smtp_timeout_seconds:
        # A send still in flight when its lease ends can be taken over by another worker and sent twice.
        problems.append(
            "RESET_MCP_DELIVERY_LEASE_SECONDS should be more than twice RESET_MCP_SMTP_TIMEOUT_SECONDS "
            f"(now {settings.delivery_lease_seconds:g} and {settings.smtp_timeout_seconds:g})"
        )
    if settings.from_address.endswith("@example.com"):
        warnings.append("RESET_MCP_FROM_ADDRESS is the example default; set your real sender address")
    if settings.reset_url.startswith("http://"):
        warnings.append("RESET_MCP_RESET_URL uses http on localhost: fine for trying it, not for production")
    if not (settings.forgot_password_url or settings.support_url):
        warnings.append(
            "security alerts advise changing the password but have no button: set RESET_MCP_FORGOT_PASSWORD_URL "
            "(your page to ask for a reset link) or RESET_MCP_SUPPORT_URL"
        )

    async def db() -> None:
        store = await open_store(
            settings.effective_database_url, pool_size=1, pool_timeout=settings.db_pool_timeout_seconds
        )
        try:
            await store.ping()
        finally:
            await store.aclose()

    if "database" not in unusable:
        try:
            anyio.run(db)
        except ResetMCPError as exc:
            problems.append(f"database: {exc}")
    if not settings.has_directory:
        warnings.append(NO_DIRECTORY_WARNING)
    else:
        try:
            print(f"account directory: {anyio.run(_directory, settings)}")
        except ResetMCPError as exc:
            problems.append(f"account directory: {_hide(str(exc), settings)}")
    answered: list[str] = []
    if probe:
        for result in anyio.run(lambda: run_probes(settings, skip=frozenset(unusable), account=account)):
            if result.ok:
                answered.append(f"{result.label}: {result.detail}")
            else:
                problems.append(f"{result.label}: {result.detail}")
    return problems, warnings, policy_view, answered


async def _directory(settings: Settings) -> str:
    """Opened as the server opens it (an SQL directory checks its query against the database)."""
    directory = await open_directory_of(settings)
    assert directory is not None
    try:
        return directory.describe
    finally:
        await directory.aclose()


def run_doctor(settings: Settings | None, *, probe: bool = False, account: str | None = None) -> int:
    if settings is None:
        print("configuration: INVALID (see above)")
        return 1
    print("reset-mcp effective configuration (RESET_MCP_*):")
    for name in type(settings).model_fields:
        print(f"  {name.upper():<32} {mask(name, getattr(settings, name))}")
    print(f"  {'(database)':<32} {mask('database_url', settings.effective_database_url)}")
    if settings.email_backend == "outbox":
        print(f"  {'(outbox folder)':<32} {settings.effective_outbox_dir}")
    problems, warnings, policy, answered = _checks(settings, probe, account)
    if policy:
        print("oversight policy:")
        print("  " + json.dumps(policy, indent=2).replace("\n", "\n  "))
    for line in answered:
        print(f"probe ok: {line}")
    for w in warnings:
        print(f"warning: {w}")
    for p in problems:
        print(f"PROBLEM: {_hide(p, settings)}")
    print("ok: nothing is wrong" if not problems else f"{len(problems)} problem(s) found")
    return 1 if problems else 0
