"""`reset-mcp doctor --probe`: connect to what the server depends on and say what answered.

    email backend   SMTP: connect, TLS/STARTTLS and AUTH as configured, NOOP, QUIT;
                    an HTTP API: its host reached; the outbox: a file written and removed
    database        opened (not migrated) and asked `ping`
    OAuth issuer    its metadata and signing keys fetched (when RESET_MCP_OAUTH_ISSUER is set)
    directory       a signed lookup of a made-up account, which must answer "no such account",
                    and of `--probe-account` when given, which must be found (when one is set)

Nothing is sent and nothing is changed. Each probe has a time limit and ends in one line:
what answered, or what failed; never a traceback, never a secret.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from reset_mcp.config import Settings
from reset_mcp.directory import open_directory_of
from reset_mcp.errors import ResetMCPError
from reset_mcp.mail import open_email_backend
from reset_mcp.mail.base import Probe
from reset_mcp.store import open_store

PROBE_SECONDS = 30.0  # beyond each part's own timeout: a probe never hangs the command
# No app has this account; an answer with one is a catch-all endpoint, not a directory.
MADE_UP_ACCOUNT = "reset-mcp-doctor-probe-no-such-account"


@dataclass(frozen=True)
class ProbeResult:
    label: str
    ok: bool
    detail: str


async def _email(settings: Settings) -> str:
    backend = open_email_backend(settings.mail_options())
    try:
        if not isinstance(backend, Probe):
            return f"{backend.name}: this backend cannot be probed"
        return f"{backend.name}: {await backend.probe()}"
    finally:
        await backend.aclose()


async def _database(settings: Settings) -> str:
    store = await open_store(
        settings.effective_database_url, pool_size=1, pool_timeout=settings.db_pool_timeout_seconds, migrate=False
    )
    try:
        await store.ping()
        return f"{store.url_for_display} answered"
    finally:
        await store.aclose()


class ProbeFailed(Exception):
    """What a probe found wrong, in words safe to print."""


async def _issuer(settings: Settings) -> str:
    # Imported here: httpx would cost every other command ~35 ms at start.
    from reset_mcp.server.http.oauth_keys import IssuerError, IssuerKeys

    assert settings.oauth_issuer is not None
    keys = IssuerKeys(settings.oauth_issuer, cache_seconds=settings.oauth_jwks_cache_seconds)
    try:
        found = await keys.keys(None)
    except IssuerError as exc:
        raise ProbeFailed(str(exc)) from None
    finally:
        await keys.aclose()
    return f"{settings.oauth_issuer}: metadata and {len(found)} signing key(s) fetched"


def _directory(account: str | None) -> Callable[[Settings], Awaitable[str]]:
    async def probe(settings: Settings) -> str:
        directory = await open_directory_of(settings)
        assert directory is not None
        try:
            if await directory.lookup(MADE_UP_ACCOUNT) is not None:
                raise ProbeFailed(
                    f"{directory.describe}: answered an account for a made-up name; check that the endpoint "
                    "or query looks the account up (a catch-all would send every reset to one address)"
                )
            said = f"{directory.describe}: a made-up account is unknown, as it should be"
            if account is None:
                return said + " (name a real one with --probe-account to check the lookup itself)"
            found = await directory.lookup(account)
            if found is None:
                raise ProbeFailed(f"{directory.describe}: --probe-account is not found (a wrong path or query?)")
            return f"{said}; --probe-account is found as user {found.user_id}"
        finally:
            await directory.aclose()

    return probe


Probes = list[tuple[str, Callable[[Settings], Awaitable[str]]]]


def probes(settings: Settings, account: str | None = None) -> Probes:
    """The probes that apply to these settings, in the order they are run."""
    chosen: Probes = [("email backend", _email), ("database", _database)]
    if settings.oauth_issuer:
        chosen.append(("OAuth issuer", _issuer))
    if settings.has_directory:
        chosen.append(("account directory", _directory(account)))
    return chosen


async def run_probes(
    settings: Settings, *, skip: frozenset[str] = frozenset(), account: str | None = None
) -> list[ProbeResult]:
    """Every probe in turn; `skip`: labels already known to fail (a folder that cannot be written);
    `account`: an account the directory must find."""
    results = []
    for label, probe in probes(settings, account):
        if label in skip:
            continue
        try:
            with anyio.fail_after(PROBE_SECONDS):
                results.append(ProbeResult(label, True, await probe(settings)))
        except TimeoutError:
            results.append(ProbeResult(label, False, f"no answer within {PROBE_SECONDS:g} s"))
        except (ResetMCPError, ProbeFailed) as exc:
            results.append(ProbeResult(label, False, str(exc)))
        except Exception as exc:  # a driver's surprise is one line here too
            results.append(ProbeResult(label, False, f"failed ({type(exc).__name__})"))
    return results
