"""One account as the directory answers it, the backends' contract, and the account check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from reset_mcp.errors import InvalidInputError
from reset_mcp.validation import single_line

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
