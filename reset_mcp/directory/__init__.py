"""The account directory: the app's own answer to "who is this account, and where does mail go".

With a directory, the recipient, user id and name of a reset come from the app, never
from the agent: the agent only names the account (an email or a user id, as the person
gave it). Two backends, each loaded lazily by `open_directory`:

    RESET_MCP_DIRECTORY_URL + _SECRET           http.HttpDirectory (a signed POST)
    RESET_MCP_DIRECTORY_SQL + _DATABASE_URL     sql.SqlDirectory (one read-only SELECT)

Neither caches an answer: the recipient must be the address on record now (an owner who
just took their account back and changed the address must not see the link go to the
old one), and a cache would make a repeated lookup of an unknown account answer faster
than one of a known account, which an agent could time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from reset_mcp.errors import ConfigError, InvalidInputError
from reset_mcp.validation import single_line

__all__ = ["ACCOUNT_MAX", "Account", "Directory", "check_account", "open_directory"]

ACCOUNT_MAX = 320  # an email (254) or an app's user id (200 elsewhere), with room to spare


@dataclass(frozen=True, slots=True)
class Account:
    """One account as the directory knows it; every field already validated."""

    user_id: str
    email: str  # normalised with validation.normalize_email
    name: str | None = None
    locale: str | None = None
    timezone: str | None = None


class Directory(Protocol):
    """Looks an account up in the app's records. The contract:

    - `lookup(account)` takes what the person gave (an email address or a user id, as
      `check_account` returns it) and returns the `Account`, or None when the app has
      no such account. It never guesses: more than one match is an error, not a pick.
    - It raises `DirectoryUnavailableError` whenever it cannot answer for sure: the
      directory is down, slow (past its timeout, one retry included), refuses our
      request, or answers in an unexpected shape. The message is one clear line for
      an operator, without the account, a secret or a traceback.
    - It never writes anything, and keeps no answer between calls.
    - `describe` names the backend for `doctor` and logs, secrets masked.
    - `aclose()` releases connections; lookups after it are not supported.
    """

    describe: str

    async def lookup(self, account: str) -> Account | None: ...

    async def aclose(self) -> None: ...


def check_account(account: str) -> str:
    """The account as given, one line, NFC, trimmed, 1 to 320 characters; else InvalidInputError.

    Not normalised further: the app decides how it matches (an email case-insensitively,
    a user id exactly), and lower-casing a user id could name another account.
    """
    if not isinstance(account, str):
        raise InvalidInputError("account: must be a string")
    checked = single_line(account, "account", ACCOUNT_MAX)
    if not checked:
        raise InvalidInputError("account: must not be empty")
    return checked


async def open_directory(
    *,
    url: str | None = None,
    secret: str | None = None,
    sql: str | None = None,
    database_url: str | None = None,
    lookup_timeout: float = 5.0,
) -> Directory | None:
    """The configured directory, or None when none is configured.

    A bad setting is a `ConfigError` now, not at the first reset: a URL without a
    secret, a query that is not a single SELECT with `:account`, or columns other than
    user_id, email, name, locale, timezone. An SQL directory checks its query against
    the database at once, so an unreachable database is a `DirectoryUnavailableError`.
    """
    if url and sql:
        raise ConfigError("set RESET_MCP_DIRECTORY_URL or RESET_MCP_DIRECTORY_SQL, not both")
    if url:
        from reset_mcp.directory.http import HttpDirectory

        return HttpDirectory(url, secret or "", timeout=lookup_timeout)
    if sql or database_url:
        from reset_mcp.directory.sql import open_sql_directory

        return await open_sql_directory(sql or "", database_url or "", lookup_timeout=lookup_timeout)
    return None
