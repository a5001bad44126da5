"""The account directory as one query on your app's database (RESET_MCP_DIRECTORY_SQL).

    RESET_MCP_DIRECTORY_SQL="SELECT id::text AS user_id, email, full_name AS name
                             FROM users WHERE lower(email) = lower(:account) OR id::text = :account"
    RESET_MCP_DIRECTORY_DATABASE_URL=postgresql://reset_mcp_ro@db/app   (or sqlite:///path/app.db)

Three guards, the last the one that holds:
1. At start the query is parsed (sqlglot, in the database's dialect) and refused unless
   it is a single SELECT (UNION and WITH allowed) that writes nothing, locks nothing,
   selects INTO nothing and has no parameter but `:account`.
2. At start the database describes the query: its columns must be user_id and email plus
   any of name, locale, timezone, and nothing else (a `SELECT *` that would pull password
   hashes into this process is refused), and `:account` must be text.
3. Every lookup runs in a read-only transaction: PostgreSQL `BEGIN READ ONLY` on
   connections whose default is read-only, with a statement timeout; SQLite opened
   `mode=ro`, `query_only`, with an authorizer that allows only reads. Give the database
   user no more than SELECT on the table, too.

At most one row may match: two rows are an error, not a choice. Database error messages
are reduced to their class and SQLSTATE, since a message can quote the account.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

from reset_mcp.directory.account import Account
from reset_mcp.directory.answer import COLUMNS, REQUIRED, account_from
from reset_mcp.errors import ConfigError, DirectoryUnavailableError

log = logging.getLogger("reset_mcp.directory")

SQL_VAR = "RESET_MCP_DIRECTORY_SQL"
URL_VAR = "RESET_MCP_DIRECTORY_DATABASE_URL"
PARAM = "account"
SQL_MAX = 10_000

# Anything in these classes anywhere in the tree refuses the query. Looked up by name so a
# sqlglot release that renames or regroups one class weakens nothing else.
_FORBIDDEN = (
    "Insert", "Update", "Delete", "Merge", "Copy", "Create", "Drop", "Alter", "Into", "Lock",
    "Command", "Pragma", "Set", "Transaction", "Commit", "Rollback", "Use", "Grant", "Kill",
    "Analyze", "Cache", "Uncache", "Describe", "DML", "DDL",
)  # fmt: skip


def dialect_of(database_url: str) -> str:
    if database_url.startswith("sqlite:///"):
        return "sqlite"
    if database_url.startswith(("postgresql://", "postgres://")):
        return "postgres"
    raise ConfigError(f"{URL_VAR} must start with sqlite:/// or postgresql://")


def check_select(sql: str, dialect: str) -> None:
    """Refuse (ConfigError) anything but one read-only SELECT whose only parameter is :account."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    if not sql or not sql.strip():
        raise ConfigError(f"{SQL_VAR} is empty")
    if len(sql) > SQL_MAX:
        raise ConfigError(f"{SQL_VAR} is longer than {SQL_MAX} characters")
    try:
        parsed = [tree for tree in sqlglot.parse(sql, read=dialect) if tree is not None]
    except SqlglotError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{SQL_VAR} is not valid SQL: {first}") from None
    if len(parsed) != 1:
        raise ConfigError(f"{SQL_VAR} must be a single statement (found {len(parsed)})")
    tree = parsed[0]
    if not isinstance(tree, exp.Query):
        raise ConfigError(f"{SQL_VAR} must be a SELECT (found {type(tree).__name__.upper()})")
    forbidden = tuple(c for c in (getattr(exp, n, None) for n in _FORBIDDEN) if isinstance(c, type))
    for node in tree.walk():
        if isinstance(node, forbidden):
            raise ConfigError(f"{SQL_VAR} must only read: it contains {type(node).__name__.upper()}")
    # Every parameter in the tree must be the :account the tokens show (a `%(account)s`
    # or `: account` is a placeholder named account to the parser, but not ours).
    nodes = list(tree.find_all(exp.Placeholder, exp.Parameter))
    names = sorted({_param_name(node) for node in nodes})
    if names != [f":{PARAM}"] or len(nodes) != len(_account_tokens(sql, dialect)):
        found = ", ".join(names) or "none"
        raise ConfigError(f"{SQL_VAR} must use exactly one parameter, written :{PARAM} (found {found})")


def _param_name(node: Any) -> str:
    from sqlglot import exp

    this = node.this
    name = this.name if isinstance(this, exp.Expression) else this
    if isinstance(node, exp.Placeholder) and isinstance(name, str) and name:
        return f":{name}"
    return str(name or "?")


def _account_tokens(sql: str, dialect: str) -> list[tuple[int, int]]:
    """(start, end) of each `:account` written as one parameter: a colon right before the name."""
    from sqlglot.dialects import Dialect
    from sqlglot.tokens import TokenType

    tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    return [
        (colon.start, name.end)
        for colon, name in itertools.pairwise(tokens)
        if colon.token_type == TokenType.COLON and name.text == PARAM and name.start == colon.end + 1
    ]


def to_numbered(sql: str, dialect: str) -> str:
    """`:account` as `$1` for asyncpg, from the tokens (never inside strings or comments)."""
    out, last = [], 0
    for start, end in _account_tokens(sql, dialect):
        out.append(sql[last:start])
        out.append("$1")
        last = end + 1
    out.append(sql[last:])
    return "".join(out)


def check_columns(columns: Sequence[str]) -> None:
    names = list(columns)
    missing = [c for c in REQUIRED if c not in names]
    extra = [c for c in names if c not in COLUMNS]
    if missing or extra or len(set(names)) != len(names):
        raise ConfigError(
            f"{SQL_VAR} must return user_id and email, optionally name, locale, timezone, nothing else "
            f"(it returns {', '.join(names) or 'no columns'})"
        )


def one_account(rows: Sequence[dict[str, Any]]) -> Account | None:
    if not rows:
        return None
    if len(rows) > 1:
        raise DirectoryUnavailableError(
            f"account directory query matched more than one account; make {SQL_VAR} match at most one row"
        )
    return account_from(rows[0], "account directory query")


def driver_error(exc: BaseException) -> DirectoryUnavailableError:
    # The class and SQLSTATE only: a server message can quote the account ("invalid input
    # syntax for type integer: ...") and the connection error can quote the URL.
    state = getattr(exc, "sqlstate", None)
    detail = f"{type(exc).__name__}, SQLSTATE {state}" if state else type(exc).__name__
    return DirectoryUnavailableError(f"account directory unavailable: database error ({detail})")
