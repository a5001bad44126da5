"""The SQL account directory: the start-up check, then real PostgreSQL and SQLite databases."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from reset_mcp.directory import Account, open_directory
from reset_mcp.directory.sql import check_select, to_numbered
from reset_mcp.directory.sql_postgres import PostgresDirectory
from reset_mcp.directory.sql_sqlite import SqliteDirectory
from reset_mcp.errors import ConfigError, DirectoryUnavailableError, InvalidInputError
from tests.pg import fresh_schema_url, pg_database_fixture

pg_url = pg_database_fixture()

PG_SQL = (
    "SELECT id::text AS user_id, email, full_name AS name, lang AS locale, tz AS timezone "
    "FROM users WHERE lower(email) = lower(:account) OR id::text = :account"
)
SQLITE_SQL = (
    "SELECT CAST(id AS TEXT) AS user_id, email, full_name AS name, lang AS locale, tz AS timezone "
    "FROM users WHERE lower(email) = lower(:account) OR CAST(id AS TEXT) = :account"
)
ROWS = [
    (1, "Alice@Example.com", "Alice Liddell", "de-AT", "Europe/Vienna"),
    (2, "bob@example.com", None, None, None),
    (3, "twin@example.com", "Twin A", None, None),
    (4, "TWIN@example.com", "Twin B", None, None),  # two rows for one lower-cased address
]
ALICE = Account("1", "alice@example.com", "Alice Liddell", "de-AT", "Europe/Vienna")
BOB = Account("2", "bob@example.com")


# The start-up check ---------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id AS user_id, email FROM users WHERE email = :account",
        "SELECT id AS user_id, email FROM users WHERE email = :account "
        "UNION SELECT id, email FROM old WHERE x = :account",
        "WITH u AS (SELECT * FROM users) SELECT id AS user_id, email FROM u WHERE email = :account;",
        "select id as user_id, email from users where email = :account -- a comment with ; and :other\n",
    ],
)
def test_a_single_select_with_account_is_accepted(sql: str, dialect: str) -> None:
    check_select(sql, dialect)


@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("UPDATE users SET email = :account", "must be a SELECT"),
        ("DELETE FROM users WHERE email = :account", "must be a SELECT"),
        ("INSERT INTO log VALUES (:account)", "must be a SELECT"),
        ("WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d WHERE email = :account", "only read: it contains"),
        ("SELECT * INTO copy FROM users WHERE email = :account", "only read: it contains INTO"),
        ("SELECT * FROM users WHERE email = :account FOR UPDATE", "only read: it contains LOCK"),
        ("SELECT 1 AS user_id WHERE 1 = :account; DROP TABLE users", "single statement"),
        ("CREATE TABLE t AS SELECT * FROM users WHERE email = :account", "must be a SELECT"),
        ("PRAGMA table_info(users)", "must be a SELECT"),
        ("VACUUM", "must be a SELECT"),
        ("SELECT id, email FROM users", r"exactly one parameter, written :account \(found none\)"),
        ("SELECT id, email FROM users WHERE email = ':account'", r"\(found none\)"),
        ("SELECT id, email FROM users WHERE email = :account OR id = :other", r"found :account, :other"),
        ("SELECT id, email FROM users WHERE email = ?", r"exactly one parameter"),
        ("SELECT id, email FROM users WHERE email = :account garbage garbage", "not valid SQL"),
        ("", "is empty"),
    ],
)
def test_anything_but_a_single_select_is_refused_at_start(sql: str, message: str, dialect: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_select(sql, dialect)


def test_account_becomes_dollar_one_only_where_it_is_a_parameter() -> None:
    sql = "SELECT id::text AS user_id, ':account' AS x FROM u WHERE e = :account OR i::text = :account -- :account"
    assert to_numbered(sql, "postgres") == (
        "SELECT id::text AS user_id, ':account' AS x FROM u WHERE e = $1 OR i::text = $1 -- :account"
    )


# PostgreSQL -------------------------------------------------------------------------------
@pytest.fixture
async def pg_users(pg_url: str) -> AsyncIterator[str]:
    url = fresh_schema_url(pg_url)
    conn = await asyncpg.connect(url)
    await conn.execute(
        "CREATE TABLE users (id bigint PRIMARY KEY, email text, full_name text, lang text, tz text, "
        "password_hash text DEFAULT 'pbkdf2$secret')"
    )
    await conn.executemany("INSERT INTO users (id, email, full_name, lang, tz) VALUES ($1, $2, $3, $4, $5)", ROWS)
    await conn.close()
    yield url


async def _pg_count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM users"))
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_postgres_finds_by_email_or_id_and_misses_cleanly(pg_users: str) -> None:
    directory = await open_directory(sql=PG_SQL, database_url=pg_users)
    assert isinstance(directory, PostgresDirectory)
    try:
        assert await directory.lookup("ALICE@example.com") == ALICE
        assert await directory.lookup("1") == ALICE
        assert await directory.lookup("2") == BOB
        assert await directory.lookup("nobody@example.com") is None
        # A quote in the account is a value, never SQL.
        assert await directory.lookup("x' OR '1'='1") is None
        with pytest.raises(DirectoryUnavailableError, match="more than one account"):
            await directory.lookup("twin@example.com")
        with pytest.raises(InvalidInputError):
            await directory.lookup("")
    finally:
        await directory.aclose()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM users WHERE email = :account", "returns id, email, full_name, lang, tz, password_hash"),
        ("SELECT email FROM users WHERE email = :account", "must return user_id and email"),
        ("SELECT id::text AS user_id, email FROM users WHERE id = :account", ":account is compared as int8"),
        ("SELECT id::text AS user_id, email FROM nowhere WHERE email = :account", 'relation "nowhere" does not exist'),
        ("SELECT id::text AS user_id, 1.5 AS email FROM users WHERE email = :account", "column email is numeric"),
    ],
)
async def test_postgres_refuses_wrong_columns_or_a_typed_parameter_at_start(
    pg_users: str, sql: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        await open_directory(sql=sql, database_url=pg_users)


@pytest.mark.postgres
async def test_postgres_a_bigint_user_id_is_read_as_text(pg_users: str) -> None:
    sql = "SELECT id AS user_id, email FROM users WHERE email = :account"
    directory = await open_directory(sql=sql, database_url=pg_users)
    assert directory is not None
    assert await directory.lookup("bob@example.com") == BOB
    await directory.aclose()


@pytest.mark.postgres
async def test_postgres_read_only_transaction_stops_what_the_parser_cannot_see(pg_users: str) -> None:
    # A volatile function that writes looks like any other call to a parser.
    conn = await asyncpg.connect(pg_users)
    await conn.execute(
        "CREATE FUNCTION wipe(a text) RETURNS text LANGUAGE sql VOLATILE AS $$ DELETE FROM users; SELECT a $$"
    )
    await conn.close()
    sql = "SELECT wipe(:account) AS user_id, email FROM users WHERE email = :account"
    check_select(sql, "postgres")  # the parser lets it through...
    directory = await open_directory(sql=sql, database_url=pg_users)
    assert directory is not None
    with pytest.raises(DirectoryUnavailableError, match="ReadOnlySQLTransactionError, SQLSTATE 25006"):
        await directory.lookup("bob@example.com")
    await directory.aclose()
    assert await _pg_count(pg_users) == len(ROWS)  # ...the transaction does not


@pytest.mark.postgres
async def test_postgres_a_write_that_skipped_the_parser_is_still_refused(pg_users: str) -> None:
    directory = await PostgresDirectory.open(
        "DELETE FROM users WHERE email = $1 RETURNING id::text AS user_id, email", pg_users, lookup_timeout=2
    )
    with pytest.raises(DirectoryUnavailableError, match="ReadOnlySQLTransactionError"):
        await directory.lookup("bob@example.com")
    await directory.aclose()
    assert await _pg_count(pg_users) == len(ROWS)


@pytest.mark.postgres
async def test_postgres_a_slow_query_is_unavailable_within_the_timeout(pg_users: str) -> None:
    sql = "SELECT id::text AS user_id, email FROM users WHERE email = :account AND pg_sleep(3) IS NOT NULL"
    directory = await open_directory(sql=sql, database_url=pg_users, lookup_timeout=0.5)
    assert directory is not None
    start = time.monotonic()
    with pytest.raises(DirectoryUnavailableError, match=r"no answer within|QueryCanceledError"):
        await directory.lookup("bob@example.com")
    assert time.monotonic() - start < 1.5
    await directory.aclose()


@pytest.mark.postgres
async def test_postgres_errors_never_quote_the_account(pg_users: str) -> None:
    sql = "SELECT id::text AS user_id, email FROM users WHERE id = CAST(:account::text AS bigint)"
    directory = await open_directory(sql=sql, database_url=pg_users)
    assert directory is not None
    with pytest.raises(DirectoryUnavailableError) as caught:
        await directory.lookup("secret-looking-input")
    assert "secret-looking-input" not in str(caught.value)
    assert "SQLSTATE 22P02" in str(caught.value)
    await directory.aclose()


async def test_postgres_unreachable_at_start_is_unavailable_without_the_password() -> None:
    with pytest.raises(DirectoryUnavailableError) as caught:
        await open_directory(sql=PG_SQL, database_url="postgresql://app:hunter2@127.0.0.1:1/app", lookup_timeout=1)
    assert "hunter2" not in str(caught.value)


# SQLite -----------------------------------------------------------------------------------
@pytest.fixture
def sqlite_users(tmp_path: Path) -> str:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")  # as an app would run it
    conn.execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, full_name TEXT, lang TEXT, tz TEXT, "
        "password_hash TEXT DEFAULT 'pbkdf2$secret')"
    )
    conn.executemany("INSERT INTO users (id, email, full_name, lang, tz) VALUES (?, ?, ?, ?, ?)", ROWS)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def _sqlite_count(url: str) -> int:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return int(conn.execute("SELECT count(*) FROM users").fetchone()[0])
    finally:
        conn.close()


async def test_sqlite_finds_by_email_or_id_and_misses_cleanly(sqlite_users: str) -> None:
    # The app keeps its own connection open and writing, as it would.
    app = sqlite3.connect(sqlite_users.removeprefix("sqlite:///"))
    directory = await open_directory(sql=SQLITE_SQL, database_url=sqlite_users)
    assert isinstance(directory, SqliteDirectory)
    assert await directory.lookup("alice@EXAMPLE.com") == ALICE
    assert await directory.lookup("2") == BOB
    assert await directory.lookup("nobody@example.com") is None
    app.execute("UPDATE users SET email = 'bob@new.example' WHERE id = 2")
    app.commit()
    assert (await directory.lookup("2")).email == "bob@new.example"  # type: ignore[union-attr]
    with pytest.raises(DirectoryUnavailableError, match="more than one account"):
        await directory.lookup("twin@example.com")
    app.close()
    await directory.aclose()


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM users WHERE email = :account", "returns id, email, full_name, lang, tz, password_hash"),
        ("SELECT id AS user_id FROM users WHERE email = :account", "must return user_id and email"),
        ("SELECT id AS user_id, email FROM nowhere WHERE email = :account", "no such table: nowhere"),
        ("UPDATE users SET email = :account", "must be a SELECT"),
    ],
)
async def test_sqlite_refuses_a_bad_query_at_start(sqlite_users: str, sql: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        await open_directory(sql=sql, database_url=sqlite_users)


async def test_sqlite_missing_file_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no database file"):
        await open_directory(sql=SQLITE_SQL, database_url=f"sqlite:///{tmp_path / 'nope.db'}")
    assert not (tmp_path / "nope.db").exists()  # and none was created


async def test_sqlite_a_write_that_skipped_the_parser_is_still_refused(sqlite_users: str) -> None:
    path = Path(sqlite_users.removeprefix("sqlite:///"))
    directory = SqliteDirectory(path, "DELETE FROM users WHERE email = :account RETURNING id AS user_id, email", 2)
    with pytest.raises(DirectoryUnavailableError, match="DatabaseError"):
        await directory.lookup("bob@example.com")
    with pytest.raises(ConfigError, match="must only read: SQLite refused it"):
        await SqliteDirectory.open("DELETE FROM users RETURNING id AS user_id, email", sqlite_users, lookup_timeout=2)
    assert _sqlite_count(sqlite_users) == len(ROWS)


async def test_sqlite_a_slow_query_is_interrupted_at_the_timeout(sqlite_users: str) -> None:
    sql = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT CAST(id AS TEXT) AS user_id, email FROM users WHERE email = :account "
        "AND (SELECT count(*) FROM n) > 0"
    )
    path = Path(sqlite_users.removeprefix("sqlite:///"))
    directory = SqliteDirectory(path, sql, 0.3)
    start = time.monotonic()
    with pytest.raises(DirectoryUnavailableError, match=r"no answer within 0.3 seconds"):
        await directory.lookup("bob@example.com")
    assert time.monotonic() - start < 1.0


async def test_sqlite_an_integer_user_id_is_read_as_text(sqlite_users: str) -> None:
    sql = "SELECT id AS user_id, email FROM users WHERE email = :account"
    directory = await open_directory(sql=sql, database_url=sqlite_users)
    assert directory is not None
    assert await directory.lookup("bob@example.com") == BOB
