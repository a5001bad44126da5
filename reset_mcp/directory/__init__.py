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

from reset_mcp.config import Settings
from reset_mcp.directory.account import ACCOUNT_MAX, Account, Directory, check_account
from reset_mcp.directory.sql import URL_VAR, check_select, dialect_of, to_numbered
from reset_mcp.errors import ConfigError

__all__ = ["ACCOUNT_MAX", "Account", "Directory", "check_account", "open_directory", "open_directory_of"]


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
        return await _open_sql(sql or "", database_url or "", lookup_timeout)
    return None


async def _open_sql(sql: str, database_url: str, lookup_timeout: float) -> Directory:
    if not database_url:
        raise ConfigError(f"{URL_VAR} is required with RESET_MCP_DIRECTORY_SQL")
    if not 0 < lookup_timeout <= 60:
        raise ConfigError("RESET_MCP_DIRECTORY_TIMEOUT_SECONDS must be above 0 and at most 60")
    dialect = dialect_of(database_url)
    check_select(sql, dialect)
    if dialect == "sqlite":
        from reset_mcp.directory.sql_sqlite import SqliteDirectory

        return await SqliteDirectory.open(sql, database_url, lookup_timeout=lookup_timeout)
    from reset_mcp.directory.sql_postgres import PostgresDirectory

    return await PostgresDirectory.open(to_numbered(sql, dialect), database_url, lookup_timeout=lookup_timeout)


async def open_directory_of(settings: Settings) -> Directory | None:
    """The directory the settings name (None without one), as the server and `doctor` open it."""
    if not settings.has_directory:
        return None
    secret, database_url = settings.directory_secret, settings.directory_database_url
    return await open_directory(
        url=settings.directory_url,
        secret=secret.get_secret_value() if secret else None,
        sql=settings.directory_sql,
        database_url=database_url.get_secret_value() if database_url else None,
        lookup_timeout=settings.directory_timeout_seconds,
    )
