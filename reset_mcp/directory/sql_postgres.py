"""The SQL directory on PostgreSQL: a small asyncpg pool of read-only connections.

Every connection starts with `default_transaction_read_only=on`, and every lookup runs
in `BEGIN READ ONLY` with `SET LOCAL statement_timeout`, so even a query the parser let
through cannot write, lock rows for update, or run for long. The query was turned from
`:account` into `$1` by `sql.to_numbered`.
"""

from __future__ import annotations

import re

import anyio
import asyncpg

from reset_mcp.directory.account import Account, check_account
from reset_mcp.directory.sql import SQL_VAR, URL_VAR, check_columns, driver_error, one_account
from reset_mcp.errors import ConfigError, DirectoryUnavailableError

POOL_MAX = 4  # lookups are rare (a few per reset request); the app's database is not ours
DRIVER_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
# `::text` compares the way the app means; a typed parameter would make an email a driver error.
TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name", "citext", "unknown"})
INTEGER_TYPES = frozenset({"int2", "int4", "int8"})


def _display(url: str) -> str:
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url).split("?", 1)[0]


class PostgresDirectory:
    def __init__(self, pool: asyncpg.Pool, sql: str, timeout: float, describe: str) -> None:
        self._pool = pool
        self._sql = sql
        self._timeout = timeout
        self.describe = describe

    @classmethod
    async def open(cls, sql: str, url: str, *, lookup_timeout: float) -> PostgresDirectory:
        timeout = lookup_timeout
        describe = f"sql directory {_display(url)}"
        try:
            with anyio.fail_after(timeout * 2):
                pool = await asyncpg.create_pool(
                    url,
                    min_size=0,
                    max_size=POOL_MAX,
                    timeout=timeout,
                    command_timeout=timeout,
                    server_settings={
                        "default_transaction_read_only": "on",
                        "application_name": "reset-mcp directory",
                    },
                )
        except TimeoutError:
            raise DirectoryUnavailableError(f"{describe}: no connection within {timeout * 2:g} seconds") from None
        except DRIVER_ERRORS as exc:
            raise DirectoryUnavailableError(f"{describe}: cannot connect ({type(exc).__name__})") from exc
        except ValueError as exc:  # asyncpg's DSN parser
            raise ConfigError(f"{URL_VAR} is not a valid PostgreSQL URL") from exc
        directory = cls(pool, sql, timeout, describe)
        try:
            await directory._describe_query()
        except BaseException:
            await pool.close()
            raise
        return directory

    async def _describe_query(self) -> None:
        try:
            async with self._pool.acquire() as conn:
                statement = await conn.prepare(self._sql)
                attributes = statement.get_attributes()
                columns = [attribute.name for attribute in attributes]
                parameters = statement.get_parameters()
        except asyncpg.PostgresSyntaxError as exc:
            raise ConfigError(f"{SQL_VAR} does not run on this database: syntax error ({exc.sqlstate})") from exc
        except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError, asyncpg.UndefinedFunctionError) as exc:
            raise ConfigError(f"{SQL_VAR} does not run on this database: {exc.message}") from exc
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc
        check_columns(columns)
        for attribute in attributes:
            allowed = TEXT_TYPES | INTEGER_TYPES if attribute.name == "user_id" else TEXT_TYPES
            if attribute.type.name not in allowed:
                raise ConfigError(f"{SQL_VAR}: column {attribute.name} is {attribute.type.name}; return it as text")
        if len(parameters) != 1:
            raise ConfigError(f"{SQL_VAR} must use exactly one parameter, :account (found {len(parameters)})")
        if parameters[0].name not in TEXT_TYPES:
            raise ConfigError(
                f"{SQL_VAR}: :account is compared as {parameters[0].name}; compare text instead, "
                "e.g. id::text = :account"
            )

    async def lookup(self, account: str) -> Account | None:
        account = check_account(account)
        try:
            with anyio.fail_after(self._timeout):
                async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                    # A statement cannot run past the lookup's own deadline on the server either.
                    await conn.execute(f"SET LOCAL statement_timeout = {int(self._timeout * 1000)}")
                    # Two rows are enough to tell "one" from "ambiguous"; never read a whole table.
                    cursor = await conn.cursor(self._sql, account)
                    rows = await cursor.fetch(2)
        except TimeoutError:
            raise DirectoryUnavailableError(
                f"account directory unavailable: no answer within {self._timeout:g} seconds"
            ) from None
        except DRIVER_ERRORS as exc:
            raise driver_error(exc) from exc
        return one_account([dict(row) for row in rows])

    async def aclose(self) -> None:
        await self._pool.close()
