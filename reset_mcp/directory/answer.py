"""Reading a directory's answer into an `Account`, strictly.

The required fields decide where a reset link goes, so a wrong type, a missing field,
an invalid address or a user id with a line break makes the whole answer unusable
(`DirectoryUnavailableError`): better no email than one to a half-understood address.
The optional fields only colour the email, so a value of the right type that fails its
check (a 300-character name, a malformed locale) is dropped with a warning instead.
Messages name the field, never its value: a value may be personal data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from reset_mcp.directory.account import Account
from reset_mcp.errors import DirectoryUnavailableError, InvalidInputError
from reset_mcp.validation import identifier, normalize_email, single_line

log = logging.getLogger("reset_mcp.directory")

REQUIRED = ("user_id", "email")
OPTIONAL = ("name", "locale", "timezone")
COLUMNS = REQUIRED + OPTIONAL
USER_ID_MAX = 200
NAME_MAX = 200
# BCP 47 in shape (language, then subtags); the composer falls back for tags it lacks.
_LOCALE = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")
# IANA zone names: "Europe/Vienna", "America/Argentina/Buenos_Aires", "UTC", "Etc/GMT+3".
_TIMEZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*")


def _optional(data: Mapping[str, Any], key: str, limit: int, shape: re.Pattern[str] | None, source: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DirectoryUnavailableError(f"{source}: '{key}' must be a string or null")
    try:
        text = single_line(value, key, limit)
    except InvalidInputError:
        text = None
        log.warning("%s: dropped an unusable '%s' (control characters or over %d characters)", source, key, limit)
    if text is not None and shape is not None and not shape.fullmatch(text):
        log.warning("%s: dropped a malformed '%s'", source, key)
        return None
    return text


def account_from(data: Any, source: str) -> Account:
    """The answer as an `Account`; `source` names the directory in messages."""
    if not isinstance(data, Mapping):
        raise DirectoryUnavailableError(f"{source}: the answer must be a JSON object")
    raw_id = data.get("user_id")
    # A numeric id is as unambiguous as its decimal text (bool is an int to Python, not an id).
    if isinstance(raw_id, int) and not isinstance(raw_id, bool):
        raw_id = str(raw_id)
    if not isinstance(raw_id, str):
        raise DirectoryUnavailableError(f"{source}: the answer lacks 'user_id' (a string or an integer)")
    if not isinstance(data.get("email"), str):
        raise DirectoryUnavailableError(f"{source}: the answer lacks 'email' (a string)")
    try:
        user_id = identifier(raw_id, "user_id", USER_ID_MAX)
    except InvalidInputError:
        raise DirectoryUnavailableError(
            f"{source}: 'user_id' must be one line of 1 to {USER_ID_MAX} characters"
        ) from None
    try:
        email = normalize_email(data["email"])
    except InvalidInputError:
        raise DirectoryUnavailableError(f"{source}: 'email' is not a valid email address") from None
    return Account(
        user_id=user_id,
        email=email,
        name=_optional(data, "name", NAME_MAX, None, source),
        locale=_optional(data, "locale", 35, _LOCALE, source),
        timezone=_optional(data, "timezone", 64, _TIMEZONE, source),
    )
